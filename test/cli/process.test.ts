import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { AA_OIDC_BIN } from '../helpers/child-process.ts';
import { spawnCli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';

/**
 * What only a real `aa-oidc` process shows; every other CLI test runs the commands in-process.
 * (`serve` from a cold start and SIGTERM: test/cli/serve-bootstrap.test.ts; a request in flight at
 * SIGTERM: test/cli/serve-shutdown.test.ts; SIGKILL mid-delivery:
 * test/logout/durability.test.ts; two worker processes on one queue:
 * test/logout/concurrent-workers.test.ts.)
 */
describe(`aa-oidc as a process (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('exits with code 2 and a one-line reason on a configuration error', async () => {
    const result = await spawnCli(['keys', 'list'], testEnv(database, { AA_OIDC_NO_SUCH_SETTING: '1' }));
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(
      result.stderr,
      /^aa-oidc: configuration error: unknown environment variable AA_OIDC_NO_SUCH_SETTING; valid names: .*\n$/,
    );
  });

  it("quotes a value typed in commander's own usage errors as every message does, so that it cannot work the terminal", async () => {
    // ESC [31m would turn the terminal red, the line break start a line that reads as the program's
    // own, and U+202E show what follows it reversed.
    const typed = '\u001b[31mred\nline\u202eevil';
    const shown = '\\u001b[31mred\\nline\\u202eevil';
    for (const [args, line] of [
      [['app', 'list', `--activ${typed}`], `unknown option "--activ${shown}"; see aa-oidc app list --help`],
      [['user', `frob${typed}`], `unknown command "frob${shown}"; see aa-oidc user --help`],
      [
        ['user', 'show', 'alice, bob', typed],
        `too many arguments for 'show'. Expected 1 argument but got 2: "alice, bob", "${shown}"; see aa-oidc user show --help`,
      ],
      [
        ['user', 'list', '--format', typed],
        `option '--format <format>' argument "${shown}" is invalid. Allowed choices are table, json, csv; see aa-oidc user list --help`,
      ],
      // A long one is cut in the middle, its end in sight, with its length.
      [
        ['app', 'list', `--${'x'.repeat(3000)}${typed}`],
        `unknown option "--${'x'.repeat(38)}…${'x'.repeat(22)}${shown}" (3020 characters); see aa-oidc app list --help`,
      ],
    ] as const) {
      const result = await spawnCli(args, testEnv(database));
      assert.deepEqual([result.code, result.stdout, result.stderr], [1, '', `aa-oidc: ${line}\n`]);
    }
  });

  it('ends quietly with code 0 when its output pipe closes early (`aa-oidc … | head`)', async () => {
    const running = startCliProcess(['--help'], testEnv(database));
    // The reader goes away before the process has written anything.
    running.process.stdout!.destroy();
    assert.equal(await running.exited, 0, running.stderr());
    assert.equal(running.stderr(), '');
  });

  it(
    'says in one line, without a stack trace, that its output could not be written (a full disk), and exits 1',
    { skip: !existsSync('/dev/full') && 'needs /dev/full (Linux)' },
    async () => {
      for (const args of [['--help'], ['migrate', '--dry-run']]) {
        const full = openSync('/dev/full', 'w');
        try {
          const child = spawn(process.execPath, [AA_OIDC_BIN, ...args], {
            env: testEnv(database),
            stdio: ['ignore', full, 'pipe'],
          });
          let stderr = '';
          child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
          const [code] = (await once(child, 'close')) as [number | null];
          assert.deepEqual(
            [code, stderr],
            [
              1,
              'aa-oidc: cannot write to standard output (ENOSPC: no space left on device); what the command printed is incomplete\n',
            ],
            args.join(' '),
          );
        } finally {
          closeSync(full);
        }
      }
    },
  );

  it(
    'runs `worker` (as `serve`) with the runtime settings of a resident server, keeping the operator’s own',
    {
      skip: process.platform !== 'linux' && 'the restart with these settings happens on Linux only',
    },
    async () => {
      /** The flags and environment of the running process, once it restarted itself (same pid). */
      const restarted = async (
        env: NodeJS.ProcessEnv,
        sign = (read: (file: string) => string[]) =>
          read('cmdline').some((argument) => argument.startsWith('--max-semi-space-size=')),
      ) => {
        const running = startCliProcess(['worker'], env);
        try {
          const pid = running.process.pid!;
          const read = (file: string) => {
            try {
              return readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0');
            } catch {
              return [];
            }
          };
          await eventually(() => sign(read), 'the process restarted itself');
          return {
            args: read('cmdline'),
            env: Object.fromEntries(
              read('environ').map((entry) => [
                entry.slice(0, entry.indexOf('=')),
                entry.slice(entry.indexOf('=') + 1),
              ]),
            ) as Record<string, string>,
          };
        } finally {
          await running.stop();
        }
      };
      const base = testEnv(database);
      for (const name of [
        'MALLOC_ARENA_MAX',
        'MALLOC_MMAP_THRESHOLD_',
        'MALLOC_TRIM_THRESHOLD_',
        'GLIBC_TUNABLES',
      ])
        delete base[name];

      const defaults = await restarted(base);
      assert.ok(defaults.args.includes('--max-semi-space-size=16'), defaults.args.join(' '));
      // The old generation is collected at twice what the last collection left, not up to 4 times.
      assert.ok(defaults.args.includes('--heap-growing-percent=100'), defaults.args.join(' '));
      // Large allocations (argon2's 19 MiB per password hash) go back to the system when freed, and
      // freed memory at the top of the heap is returned: glibc's adaptive thresholds would otherwise
      // keep the largest freed block's size resident.
      assert.equal(defaults.env.MALLOC_ARENA_MAX, '2');
      assert.equal(defaults.env.MALLOC_MMAP_THRESHOLD_, '131072');
      assert.equal(defaults.env.MALLOC_TRIM_THRESHOLD_, '131072');

      const own = await restarted({
        ...base,
        MALLOC_ARENA_MAX: '4',
        GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=1048576',
        MALLOC_TRIM_THRESHOLD_: '262144',
      });
      assert.equal(own.env.MALLOC_ARENA_MAX, '4');
      assert.equal(own.env.MALLOC_MMAP_THRESHOLD_, undefined, 'set through GLIBC_TUNABLES');
      assert.equal(own.env.MALLOC_TRIM_THRESHOLD_, '262144');

      // The operator's own semi-space size: no V8 flag is added, and glibc's settings still are.
      const ownV8 = await restarted({ ...base, NODE_OPTIONS: '--max-semi-space-size=32' }, (read) =>
        read('environ').includes('MALLOC_ARENA_MAX=2'),
      );
      assert.ok(
        !ownV8.args.some((argument) => argument.startsWith('--max-semi-space-size')),
        ownV8.args.join(' '),
      );
      assert.ok(
        !ownV8.args.some((argument) => argument.startsWith('--heap-growing-percent')),
        ownV8.args.join(' '),
      );
      assert.equal(ownV8.env.NODE_OPTIONS, '--max-semi-space-size=32');
      assert.equal(ownV8.env.MALLOC_MMAP_THRESHOLD_, '131072');
      assert.equal(ownV8.env.MALLOC_TRIM_THRESHOLD_, '131072');
    },
  );
});
