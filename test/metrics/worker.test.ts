import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { METRIC_NAMES, WORKER_METRIC_NAMES } from '../../src/metrics/registry.ts';
import type { Child } from '../helpers/child-process.ts';
import { startCli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type Receiver, startReceiver } from '../logout/helpers.ts';

describe(`aa-oidc worker with the metrics listener (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  let receiver: Receiver;
  before(async () => {
    receiver = await startReceiver((_request, response) => response.end());
    fixture = await startLogoutWorkerFixture({ logout: { allowPrivateTargets: true } });
  });
  after(async () => {
    await fixture.close();
    await receiver.close();
  });

  it('counts the logouts it delivers on its own /metrics, and closes it on SIGTERM', async () => {
    const clientId = await fixture.application('Metered RP', receiver.url());
    const userId = await fixture.userHoldingToken('metered', clientId);
    await fixture.services.directoryAdmin.deactivate({ id: userId });
    const worker = startCliProcess(
      ['worker'],
      testEnv(fixture.database, {
        AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true',
        AA_OIDC_METRICS_HOST: '127.0.0.1',
      }),
    );
    let metricsUrl: string;
    try {
      const startup = await worker.waitFor(
        /^aa-oidc back-channel logout worker \(development\), metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m,
        'the startup line',
      );
      metricsUrl = startup[1]!;
      await eventually(() => receiver.requests.length === 1, 'the logout reached the application');
      let text = '';
      const dispatched = new RegExp(
        `^aa_oidc_bcl_dispatches_total\\{client_id="${clientId}",outcome="success"\\} 1$`,
        'm',
      );
      await eventually(async () => {
        const response = await fetch(metricsUrl);
        assert.equal(response.status, 200);
        text = await response.text();
        return dispatched.test(text);
      }, 'the scrape counts the delivery');
      assert.match(text, /^aa_oidc_bcl_delivery_seconds_count\{outcome="success"\} 1$/m);
      assert.match(text, /^process_resident_memory_bytes \d+/m, 'the process metrics');
      for (const name of METRIC_NAMES) {
        const exported = new RegExp(`^# TYPE ${name} `, 'm').test(text);
        assert.equal(
          exported,
          WORKER_METRIC_NAMES.includes(name),
          `${name} exported only if a worker moves it`,
        );
      }
    } finally {
      assert.equal(await worker.stop(), 0, worker.stderr());
    }
    await assert.rejects(fetch(metricsUrl), 'the listener is closed after shutdown');
  });

  it("listens on 9465 when no metrics port is set, not on serve's 9464 (a worker unit without one)", async () => {
    const env = testEnv(fixture.database, { AA_OIDC_METRICS_HOST: '127.0.0.1' });
    delete env.AA_OIDC_METRICS_PORT;
    const worker = startCliProcess(['worker'], env);
    try {
      const startup = await worker.waitFor(
        /^aa-oidc back-channel logout worker \(development\), metrics on (\S+)$/m,
        'the startup line',
      );
      assert.equal(startup[1], 'http://127.0.0.1:9465/metrics');
      const response = await fetch('http://127.0.0.1:9465/metrics');
      assert.equal(response.status, 200);
      assert.match(await response.text(), /^# TYPE aa_oidc_bcl_dispatches_total counter$/m);
    } finally {
      assert.equal(await worker.stop(), 0, worker.stderr());
    }
  });

  it('refuses to start on the metrics port of a serve on the same host, naming the setting', async () => {
    const serve = startCli(
      ['serve'],
      testEnv(fixture.database, {
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        // The first test's application has a back-channel logout URI: serve wants the issuer then.
        AA_OIDC_ISSUER: 'http://127.0.0.1:8000/o',
        AA_OIDC_METRICS_HOST: '127.0.0.1',
        AA_OIDC_LOGOUT_DELIVER_IN_SERVE: 'false',
      }),
    );
    let worker: Child | undefined;
    try {
      const port = (await serve.waitFor(/, metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics$/m))[1]!;
      worker = startCliProcess(
        ['worker'],
        testEnv(fixture.database, { AA_OIDC_METRICS_HOST: '127.0.0.1', AA_OIDC_METRICS_PORT: port }),
      );
      await worker.waitFor(/^aa-oidc: /m, 'the refusal', 30_000);
      assert.equal(await worker.exited, 1, worker.stdout());
      assert.equal(
        worker.stderr(),
        `aa-oidc: the metrics listener cannot bind 127.0.0.1:${port}: the port is already in use ` +
          '(by another aa-oidc serve or worker on this host, or another program); give each process a ' +
          'metrics port of its own with AA_OIDC_METRICS_PORT, or turn this listener off with ' +
          'AA_OIDC_METRICS_ENABLED=false\n',
      );
    } finally {
      await worker?.stop('SIGKILL');
      assert.equal(await serve.stop(), 0, serve.stderr());
    }
  });
});
