import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';

/**
 * Tests that need Chromium, Python authlib or Go with go-oidc run when the tool is installed and are
 * skipped with a visible reason otherwise; with AA_OIDC_REQUIRE_E2E=1 (set by .ci/run) a missing tool
 * is a failure.
 */
export const CHROMIUM_PATH = process.env.AA_OIDC_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const PYTHON_PATH = '/usr/bin/python3';
export const GO_PATH = '/usr/bin/go';
/** Debian's Go sources (golang-*-dev packages), built against in GOPATH mode: nothing is downloaded. */
export const DEBIAN_GOPATH = '/usr/share/gocode';

/** `reason`, to skip with; with AA_OIDC_REQUIRE_E2E=1 a thrown error instead. */
export function missing(reason: string): string {
  if (process.env.AA_OIDC_REQUIRE_E2E === '1') {
    throw new Error(`${reason}, and AA_OIDC_REQUIRE_E2E=1 makes that a failure`);
  }
  return reason;
}

/** `false` when Chromium is present, otherwise the reason to skip (a string, shown by the runner). */
export function chromiumUnavailable(): string | false {
  return existsSync(CHROMIUM_PATH)
    ? false
    : missing(`Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium)`);
}

export function authlibUnavailable(): string | false {
  try {
    execFileSync(PYTHON_PATH, ['-c', 'import authlib, requests'], { stdio: 'ignore' });
    return false;
  } catch {
    return missing(
      `Python authlib not importable by ${PYTHON_PATH} (apt-get install python3-authlib python3-requests)`,
    );
  }
}

/** `false` when Go and Debian's go-oidc, x/oauth2 and x/net sources are there to build a relying party. */
export function goOidcUnavailable(): string | false {
  const packages = 'apt-get install golang-go golang-github-coreos-go-oidc-dev golang-golang-x-oauth2-dev';
  try {
    execFileSync(GO_PATH, ['version'], { stdio: 'ignore' });
  } catch {
    return missing(`Go not found at ${GO_PATH} (${packages})`);
  }
  for (const source of ['github.com/coreos/go-oidc', 'golang.org/x/oauth2', 'golang.org/x/net/html']) {
    if (!existsSync(path.join(DEBIAN_GOPATH, 'src', source)))
      return missing(`the Go package ${source} is not in ${DEBIAN_GOPATH} (${packages})`);
  }
  return false;
}

/**
 * `false` when `command ARGS` runs and exits 0, otherwise the reason to skip, naming the Debian
 * package that brings it (nginx, systemd-analyze, pg_dump, openssl).
 */
export function commandUnavailable(
  command: string,
  args: readonly string[],
  debianPackage: string,
): string | false {
  try {
    execFileSync(command, [...args], { stdio: 'ignore' });
    return false;
  } catch {
    return missing(`${command} is not installed (apt-get install ${debianPackage})`);
  }
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
