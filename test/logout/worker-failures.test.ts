import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { Browser, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { holdTokensAt, type RpReceiver, startRpReceiver } from './rp-receiver.ts';

/**
 * A logout worker whose rounds keep failing (a read-only or full disk, a database gone) waits longer
 * after each failure instead of trying again at once on the jobs already due: the log gets one line
 * per round, not thousands a second. The failure is SQLite's own refusal to write
 * (`PRAGMA query_only` on the server's connection), so this runs in the SQLite pass.
 */
describe(
  `a logout worker on a database that refuses writes (${testDatabaseKind})`,
  { skip: testDatabaseKind === 'sqlite' ? false : 'runs in the SQLite pass (PRAGMA query_only is SQLite’s)' },
  () => {
    let server: TestServer;
    let receiver: RpReceiver;
    const harness = createLeakHarness();

    before(async () => {
      server = await startServer({ logout: { allowPrivateTargets: true } }, { harness });
      receiver = await startRpReceiver([200]);
    });
    after(async () => {
      server.app.database.sqlite?.pragma('query_only = OFF');
      await receiver.close();
      await server.close();
    });

    it('backs off between failed rounds, and delivers once writes work again', async () => {
      const app = await seedApp(server, { skipAuthorization: true, backchannelLogoutUri: receiver.url() });
      const user = await seedUser(server);
      await holdTokensAt(server, new Browser(), app, user.username);
      await server.app.directoryAdmin.deactivate({ id: user.id });
      const failed = () => harness.logLines.filter((line) => line.includes('"msg":"logout worker')).length;

      server.app.database.sqlite!.pragma('query_only = ON');
      const worker = server.app.logout.startWorker({ pollIntervalMs: 50 });
      try {
        await new Promise((resolve) => setTimeout(resolve, 1600));
        // 50, 100, 200, 400, 800 ms: about five failed rounds in 1.6 s, where no backoff made hundreds.
        const rounds = failed();
        assert.ok(rounds >= 2 && rounds <= 8, `${rounds} failed rounds logged`);
        assert.equal(receiver.requests.length, 0);

        server.app.database.sqlite!.pragma('query_only = OFF');
        const deadline = Date.now() + 5000;
        while (receiver.requests.length === 0 && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(receiver.requests.length, 1, 'delivered once writes work again');
      } finally {
        await worker.stop();
      }
    });
  },
);
