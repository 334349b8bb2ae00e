import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startOnFreePort } from '../helpers/server.ts';
import { type Child, runToEnd, startChild } from '../helpers/child-process.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const NETWORK_GUARD = fileURLToPath(new URL('../helpers/network-guard.ts', import.meta.url));
const OLD_NODE = '/usr/bin/node';

/** The environment of a shell on a production host: no npm script variables, no test settings. */
function hostEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('npm_') && !name.startsWith('AA_OIDC_') && name !== 'NODE_OPTIONS')
      env[name] = value;
  }
  env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${env.PATH ?? ''}`;
  return { ...env, ...extra };
}

/**
 * Installation without dev tools: a fresh clone (the files git would check out, nothing built),
 * `npm ci --omit=dev`, then the start command README gives, in production mode.
 */
describe('a fresh clone installed with npm ci --omit=dev', () => {
  let clone: string;
  let server: Child | undefined;

  before(() => {
    clone = mkdtempSync(path.join(tmpdir(), 'aa-oidc-clone-'));
    const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
      cwd: REPO,
      encoding: 'utf8',
    })
      .split('\0')
      .filter((file) => file !== '' && existsSync(path.join(REPO, file)));
    for (const file of files) cpSync(path.join(REPO, file), path.join(clone, file));
  });
  after(async () => {
    await server?.stop('SIGKILL');
    rmSync(clone, { recursive: true, force: true });
  });

  it('installs without TypeScript, prints its version, migrates and serves with npm start', async () => {
    // --offline: the packages come from npm's cache (filled by the `npm ci` that set up this checkout).
    const install = await runToEnd('npm', ['ci', '--omit=dev', '--offline', '--no-audit', '--no-fund'], {
      cwd: clone,
      env: hostEnv(),
    });
    assert.equal(install.code, 0, `npm ci --omit=dev failed:\n${install.stdout}\n${install.stderr}`);
    assert.ok(!existsSync(path.join(clone, 'node_modules', 'typescript')), 'no dev dependency was installed');
    assert.ok(!existsSync(path.join(clone, 'dist')), 'nothing was built');

    const manifest = JSON.parse(readFileSync(path.join(clone, 'package.json'), 'utf8')) as {
      version: string;
    };
    const version = await runToEnd(process.execPath, ['bin/aa-oidc.js', '--version'], {
      cwd: clone,
      env: hostEnv(),
    });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, `aa-oidc ${manifest.version}\n`);

    const production = hostEnv({
      NODE_ENV: 'production',
      NODE_OPTIONS: `--import=${NETWORK_GUARD}`,
      AA_OIDC_ISSUER: 'https://auth.example.org/o',
      AA_OIDC_SECRET_KEY: randomBytes(32).toString('base64url'),
      AA_OIDC_DATABASE_URL: 'sqlite:./data/aa-oidc.sqlite',
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_METRICS_ENABLED: 'false',
      // Behind the TLS-terminating reverse proxy a production server needs (check E007).
      AA_OIDC_TRUST_PROXY: 'true',
    });
    const migrate = await runToEnd(process.execPath, ['bin/aa-oidc.js', 'migrate'], {
      cwd: clone,
      env: production,
    });
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /applied \d+ migration\(s\)/);

    let port = 0;
    server = await startOnFreePort(async (free) => {
      port = free;
      const started = startChild('npm', ['start'], {
        cwd: clone,
        env: { ...production, AA_OIDC_PORT: String(port) },
      });
      await started.waitFor(/aa-oidc production server on http:\/\/127\.0\.0\.1:\d+/, 'the listening line');
      return started;
    });
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    const discovery = await fetch(`http://127.0.0.1:${port}/o/.well-known/openid-configuration`, {
      headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.example.org' },
    });
    assert.equal(discovery.status, 200);
    assert.equal(((await discovery.json()) as { issuer: string }).issuer, 'https://auth.example.org/o');
  });

  it('says which Node.js it needs, in one line, when this one cannot run the sources and nothing is built', async () => {
    const run = await runToEnd(
      process.execPath,
      ['--no-experimental-strip-types', 'bin/aa-oidc.js', '--version'],
      { cwd: clone, env: hostEnv() },
    );
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      /^aa-oidc: Node\.js \S+ does not run TypeScript sources and dist\/ is not built; use Node\.js 22\.18 or newer, or build once with `npm ci && npm run build`\n$/,
    );
  });

  it('names the Node.js version it needs on an older Node.js, in one line', async (t) => {
    const old = existsSync(OLD_NODE)
      ? execFileSync(OLD_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim()
      : undefined;
    if (old === undefined || Number(old.split('.')[0]) >= 22) {
      t.skip(
        `needs a Node.js older than 22 at ${OLD_NODE} (Debian's nodejs package); found ${old ?? 'none'}`,
      );
      return;
    }
    const run = await runToEnd(OLD_NODE, ['bin/aa-oidc.js', 'serve'], { cwd: clone, env: hostEnv() });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, `aa-oidc: needs Node.js 22.12 or newer; this is Node.js ${old} (${OLD_NODE})\n`);
  });
});
