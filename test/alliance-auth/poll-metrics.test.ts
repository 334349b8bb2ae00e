import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeOnEachAllianceAuth } from '../helpers/alliance-auth.ts';
import { withColumnRenamed } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';

const TOKEN = 'metrics-scrape-token-0123456789';

await describeOnEachAllianceAuth(
  (database) => `The Alliance Auth poller's metrics, scraped from a server on ${database}`,
  (kind) => {
    const suite = serveAllianceAuth(kind, {
      directory: { pollSeconds: 3600 },
      config: { metrics: { enabled: false, bearerToken: TOKEN } },
    });

    const scrape = async () => {
      const response = await fetch(`${suite.server.origin}/metrics`, {
        headers: { Authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(response.status, 200);
      return response.text();
    };
    const value = (text: string, series: string) => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };

    it('counts cycles by outcome and keeps the last success while a column AA lost stops polling', async () => {
      const poller = suite.server.app.allianceAuth!.poller;
      const before = Date.now() / 1000;
      assert.notEqual((await poller.pollOnce()).outcome, 'aa_schema_error');
      let text = await scrape();
      assert.match(text, /^# TYPE aa_oidc_aa_poll_cycles_total counter$/m);
      assert.match(text, /^# TYPE aa_oidc_aa_poll_last_success_timestamp_seconds gauge$/m);
      assert.equal(value(text, 'aa_oidc_aa_poll_cycles_total{outcome="baseline"}'), 1);
      assert.equal(value(text, 'aa_oidc_aa_poll_cycles_total{outcome="aa_schema_error"}'), 0);
      const succeeded = value(text, 'aa_oidc_aa_poll_last_success_timestamp_seconds')!;
      assert.ok(
        succeeded >= Math.floor(before - 60) && succeeded <= Date.now() / 1000 + 1,
        String(succeeded),
      );

      await withColumnRenamed(suite.fixture, 'authentication_characterownership', 'owner_hash', async () => {
        assert.equal((await poller.pollOnce()).outcome, 'aa_schema_error');
      });
      text = await scrape();
      assert.equal(value(text, 'aa_oidc_aa_poll_cycles_total{outcome="aa_schema_error"}'), 1);
      assert.equal(value(text, 'aa_oidc_aa_poll_cycles_total{outcome="aa_unreachable"}'), 0);
      assert.equal(value(text, 'aa_oidc_aa_poll_last_success_timestamp_seconds'), succeeded, 'unchanged');
    });
  },
);
