import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { METRIC_NAMES } from '../../src/metrics/registry.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

describe(`aa-oidc serve with the metrics listener (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database.drop());

  it('starts the metrics listener, names it on the startup line, and stops it on SIGTERM', async () => {
    const child = spawn(process.execPath, ['src/cli/run.ts', 'serve'], {
      env: testEnv(database, {
        AA_OIDC_PORT: '0',
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_METRICS_PORT: '0',
        AA_OIDC_METRICS_HOST: '127.0.0.1',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let metricsUrl: string;
    try {
      metricsUrl = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no startup line:\n${stdout}\n${stderr}`)), 30_000);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          const match =
            /^aa-oidc development server on http:\/\/127\.0\.0\.1:\d+ \(issuer \S+\), metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m.exec(
              stdout,
            );
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
        child.on('close', () => reject(new Error(`serve exited early:\n${stdout}\n${stderr}`)));
      });
      const response = await fetch(metricsUrl);
      assert.equal(response.status, 200);
      const text = await response.text();
      for (const name of METRIC_NAMES) assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
    await assert.rejects(fetch(metricsUrl), 'the listener is closed after shutdown');
  });
});
