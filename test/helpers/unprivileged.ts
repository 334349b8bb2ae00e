import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import { AA_OIDC_BIN } from './child-process.ts';
import { cli } from './cli.ts';

/** Node's first act: become nobody (the node binary itself lives under /root, out of nobody's reach). */
export const DROP_TO_NOBODY = '--import=data:text/javascript,process.setgid(65534);process.setuid(65534);';

/** True when the tests run as root: file modes do not stop root, so the command runs as nobody. */
export const asRoot = process.getuid?.() === 0;

/**
 * Why nobody cannot run aa-oidc from this checkout, or undefined when it can: every folder above
 * bin/aa-oidc.js must let others through (a checkout under a 0700 folder, such as one made by
 * `mktemp -d`, keeps nobody out, and the command would fail before it says anything of its own).
 */
export function whyNobodyCannotRun(): string | undefined {
  for (let folder = path.dirname(AA_OIDC_BIN); ; folder = path.dirname(folder)) {
    if ((statSync(folder).mode & 0o001) === 0) {
      return `the checkout is not reachable by nobody (${folder} is closed to other users); clone it under a folder others may enter`;
    }
    if (folder === path.dirname(folder)) return undefined;
  }
}

/** The arguments that run `aa-oidc ARGS` as a user file modes apply to (nobody, when run as root). */
export function unprivilegedCommand(args: readonly string[]): string[] {
  return [...(asRoot ? [DROP_TO_NOBODY] : []), AA_OIDC_BIN, ...args];
}

/**
 * The environment of a development aa-oidc on the SQLite `file` (its data in `dataDir`), on a free
 * loopback port without metrics, once `aa-oidc migrate` has made the file (as this user).
 */
export async function migratedSqliteEnv(
  file: string,
  dataDir: string,
): Promise<Record<string, string | undefined>> {
  const env = {
    PATH: process.env.PATH,
    NODE_ENV: 'development',
    AA_OIDC_DATABASE_URL: `sqlite:${file}`,
    AA_OIDC_DATA_DIR: dataDir,
    AA_OIDC_SECRET_KEY: 'k'.repeat(32),
    AA_OIDC_HOST: '127.0.0.1',
    AA_OIDC_PORT: '0',
    AA_OIDC_METRICS_ENABLED: 'false',
    AA_OIDC_LOG_LEVEL: 'warn',
  };
  const migrated = await cli(['migrate'], env);
  assert.equal(migrated.code, 0, migrated.stderr);
  return env;
}
