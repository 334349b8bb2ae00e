import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import {
  type AllianceAuthTestDatabase,
  allianceAuthEnv,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
} from '../helpers/alliance-auth.ts';
import { startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { within } from '../../src/util/within.ts';

/**
 * `aa-oidc serve` stopped by SIGTERM while the route to Alliance Auth's database is dead (a relay that
 * passes nothing either way and closes nothing), its pooled connections idle: it logs the connections
 * it closed without the server's goodbye and exits 0, rather than running on for TCP's retry timeout
 * or for ever.
 */
await describeOnEachAllianceAuth(
  (database) => `aa-oidc serve stopped while the route to an Alliance Auth on ${database} is dead`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let proxy: TcpProxy;
    let database: TestDatabase;

    beforeEach(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      const server = new URL(fixture.readerUrl);
      proxy = await startTcpProxy(server.hostname, Number(server.port || (kind === 'mysql' ? 3306 : 5432)));
      database = await createTestDatabase({ migrated: true });
    });
    afterEach(async () => {
      await proxy?.close();
      await database?.drop();
      await fixture?.drop();
    });

    it('exits 0 after SIGTERM, naming the connections it abandoned', async () => {
      const serve = startCliProcess(
        ['serve'],
        testEnv(database, {
          ...allianceAuthEnv(proxy.wrap(fixture.readerUrl)),
          AA_OIDC_AA_POLL_SECONDS: '3600',
          AA_OIDC_PORT: '0',
          AA_OIDC_HOST: '127.0.0.1',
          AA_OIDC_METRICS_ENABLED: 'false',
          AA_OIDC_LOG_LEVEL: 'info',
        }),
      );
      try {
        await serve.waitFor(/ server on http:\/\/127\.0\.0\.1:\d+ /);
        // The poller's first cycle done: every connection in the pool is idle.
        await serve.waitFor(/"Alliance Auth fingerprints recorded/);
        proxy.freeze();
        const held = proxy.frozenConnections;
        assert.ok(held > 0, 'serve holds connections to Alliance Auth on the dead route');
        serve.process.kill('SIGTERM');
        await serve.waitFor(/"shutting down"/);
        // The deadline bounds only a failure: the server that hangs never exits.
        assert.equal(await within(serve.exited, 60_000, 'still running'), 0, serve.stderr());
        const warned = /^.*without the server's goodbye.*$/m.exec(serve.stdout() + serve.stderr());
        assert.ok(warned, serve.stdout() + serve.stderr());
        const line = JSON.parse(warned[0]) as Record<string, unknown>;
        assert.equal(line.level, 40, 'logged at warn');
        assert.equal(line.connections, held, 'each connection on the dead route');
      } finally {
        await serve.stop('SIGKILL');
      }
    });
  },
);
