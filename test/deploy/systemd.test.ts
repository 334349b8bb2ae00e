import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runToEnd } from '../helpers/child-process.ts';
import { commandUnavailable } from '../helpers/e2e.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const UNITS = ['aa-oidc.service', 'aa-oidc-worker.service'] as const;

/** The settings of a unit file: each key with every value it is given, in order. */
function unitSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    settings.set(match[1]!, [...(settings.get(match[1]!) ?? []), match[2]!]);
  }
  return settings;
}

describe('the systemd units in deploy/systemd', () => {
  const texts = Object.fromEntries(
    UNITS.map((unit) => [unit, readFileSync(path.join(REPO, 'deploy/systemd', unit), 'utf8')]),
  ) as Record<(typeof UNITS)[number], string>;

  for (const unit of UNITS) {
    it(`${unit}: a non-root user, a private data directory, restarted on failure, hardened`, () => {
      const settings = unitSettings(texts[unit]);
      const one = (key: string) => settings.get(key)?.at(-1);
      assert.equal(one('User'), 'aa-oidc');
      assert.equal(one('Group'), 'aa-oidc');
      assert.equal(one('StateDirectory'), 'aa-oidc');
      assert.equal(one('StateDirectoryMode'), '0700');
      assert.equal(one('UMask'), '0077');
      assert.match(one('Environment')!, /AA_OIDC_DATA_DIR=\/var\/lib\/aa-oidc/);
      assert.match(one('Environment')!, /NODE_ENV=production/);
      assert.equal(one('Restart'), 'on-failure');
      assert.equal(one('KillSignal'), 'SIGTERM');
      assert.equal(one('EnvironmentFile'), '/etc/aa-oidc/aa-oidc.env');
      for (const [key, value] of [
        ['NoNewPrivileges', 'yes'],
        ['ProtectSystem', 'strict'],
        ['ProtectHome', 'yes'],
        ['PrivateTmp', 'yes'],
        ['PrivateDevices', 'yes'],
        ['CapabilityBoundingSet', ''],
        ['RestrictSUIDSGID', 'yes'],
        ['RestrictNamespaces', 'yes'],
      ] as const)
        assert.equal(one(key), value, `${key}=${value}`);
      assert.match(one('ExecStart')!, unit === 'aa-oidc.service' ? / serve$/ : / worker$/);
    });
  }

  for (const unit of UNITS) {
    it(`${unit}: keeps Node.js's compile cache across restarts, in a directory of its own`, () => {
      const settings = unitSettings(texts[unit]);
      const one = (key: string) => settings.get(key)?.at(-1);
      // bin/aa-oidc.js's cache would otherwise be in the system's temporary folder: with PrivateTmp
      // a new, empty one at every start, so no start would reuse it.
      const cache = /\bNODE_COMPILE_CACHE=(\S+)/.exec(one('Environment') ?? '')?.[1];
      assert.ok(cache, 'the unit sets NODE_COMPILE_CACHE');
      assert.equal(one('CacheDirectory'), 'aa-oidc');
      assert.equal(one('CacheDirectoryMode'), '0700');
      // One folder a unit (%N: aa-oidc@8000, aa-oidc-worker), in the one systemd keeps writable.
      assert.equal(cache, '/var/cache/aa-oidc/%N');
    });
  }

  it('aa-oidc-worker.service gives the worker a metrics port apart from the instances of aa-oidc.service', () => {
    const port = (unit: (typeof UNITS)[number]) =>
      /\bAA_OIDC_METRICS_PORT=(\d+)\b/.exec(unitSettings(texts[unit]).get('Environment')?.at(-1) ?? '')?.[1];
    const workerPort = port('aa-oidc-worker.service');
    assert.ok(workerPort, 'the worker unit sets AA_OIDC_METRICS_PORT');
    // aa-oidc.service keeps the default 9464; docs/deployment.md's instances take 18000 and 18001.
    assert.equal(port('aa-oidc.service'), undefined);
    assert.ok(!['9464', '18000', '18001'].includes(workerPort), workerPort);
  });

  describe(
    'checked by systemd-analyze',
    { skip: commandUnavailable('systemd-analyze', ['--version'], 'systemd') },
    () => {
      let folder: string;
      before(() => {
        // The units as installed from this checkout: its bin/aa-oidc.js, run by this Node.js.
        folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-units-'));
        for (const unit of UNITS)
          writeFileSync(
            path.join(folder, unit),
            texts[unit]
              .replace(
                '/usr/bin/node /opt/aa-oidc/bin/aa-oidc.js',
                `${process.execPath} ${REPO}bin/aa-oidc.js`,
              )
              .replaceAll('/opt/aa-oidc', REPO.replace(/\/$/, '')),
          );
      });
      after(() => rmSync(folder, { recursive: true, force: true }));

      it('the two-instance template docs/deployment.md makes from aa-oidc.service passes verify', async () => {
        const guide = readFileSync(path.join(REPO, 'docs/deployment.md'), 'utf8');
        const expression = /^sed -e '(s\/\^Environment=[^']+)' \\$/m.exec(guide)?.[1];
        assert.ok(expression, 'docs/deployment.md makes aa-oidc@.service with sed');
        const made = await runToEnd('sed', ['-e', expression, path.join(folder, 'aa-oidc.service')]);
        assert.equal(made.code, 0, made.stderr);
        assert.match(
          made.stdout,
          /^Environment=AA_OIDC_PORT=%i AA_OIDC_METRICS_PORT=1%i NODE_ENV=production /m,
        );
        writeFileSync(path.join(folder, 'aa-oidc@8000.service'), made.stdout);
        const run = await runToEnd('systemd-analyze', ['verify', path.join(folder, 'aa-oidc@8000.service')]);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(`${run.stdout}${run.stderr}`.trim(), '', 'no warning');
      });

      for (const unit of UNITS) {
        it(`${unit} passes systemd-analyze verify without a warning`, async () => {
          const run = await runToEnd('systemd-analyze', ['verify', path.join(folder, unit)]);
          assert.equal(run.code, 0, run.stderr);
          assert.equal(`${run.stdout}${run.stderr}`.trim(), '', 'no warning');
        });

        it(`${unit} rates "OK" in systemd-analyze security`, async () => {
          const run = await runToEnd('systemd-analyze', [
            'security',
            '--offline=true',
            path.join(folder, unit),
          ]);
          assert.equal(run.code, 0, run.stderr);
          const level = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(run.stdout);
          assert.ok(level, run.stdout.slice(-500));
          assert.equal(level[2], 'OK', `exposure ${level[1]}`);
        });
      }
    },
  );
});
