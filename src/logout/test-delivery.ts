import { randomBytes } from 'node:crypto';
import type { Delivery, Final } from './delivery.ts';
import { type NewJobs, queuedLogouts as queued } from './jobs.ts';
import type { BclTestResult, LogoutDependencies, LogoutService } from './types.ts';

/**
 * `aa-oidc bcl test`: one test token for a no-op subject to each application, delivered at once
 * (one attempt, never queued), recorded and observed like any delivery.
 */

/** The subject of `admin_test` tokens: never numeric, so it can never be a user's `sub`. */
export function testSubject(): string {
  return `aa-oidc-bcl-test-${randomBytes(8).toString('hex')}`;
}

export function createTestDelivery(deps: {
  database: LogoutDependencies['database'];
  applications: LogoutDependencies['applications'];
  now: () => number;
  newJobs: NewJobs;
  delivery: Pick<Delivery, 'attemptOnce' | 'recordFinal' | 'observed'>;
  published: LogoutService['published'];
}): LogoutService['testDelivery'] {
  const { now, newJobs, published } = deps;
  const { attemptOnce, recordFinal, observed } = deps.delivery;
  const db = deps.database.db;

  return async (clientIds) => {
    const results: BclTestResult[] = [];
    for (const clientId of clientIds) {
      const app = await deps.applications.findByClientId(clientId);
      if (!app) {
        results.push(notSent(clientId, null, 'no such application (see `aa-oidc app list`)'));
        continue;
      }
      if (!app.active) {
        results.push(notSent(clientId, app.name, 'the application is deactivated'));
        continue;
      }
      if (app.backchannelLogoutUri === null) {
        results.push(notSent(clientId, app.name, 'the application has no back-channel logout URI'));
        continue;
      }
      const [job] = newJobs(null, testSubject(), 'admin_test', [{ clientId, sid: null }]);
      published(queued([job!]));
      const startedAt = now();
      const result = await attemptOnce(
        {
          sub: job!.sub,
          clientId,
          jti: job!.jti,
          iat: job!.iat,
          exp: job!.exp,
          kid: job!.kid,
          sid: null,
        },
        app,
        true,
      );
      // `exhausted` is true: a test is one attempt, so a 5xx or network failure is final.
      const final: Final =
        'retry' in result
          ? { outcome: 'retries_exhausted', httpStatus: result.httpStatus, detail: result.detail }
          : result;
      const at = now();
      const entry = {
        clientId,
        clientName: app.name,
        userId: null,
        trigger: 'admin_test',
        jti: job!.jti,
        attempts: 1,
        startedAt,
      };
      await recordFinal(db, entry, final, at);
      observed(entry, final, at);
      results.push({
        clientId,
        name: app.name,
        outcome: final.outcome,
        httpStatus: final.httpStatus,
        detail: final.detail,
      });
    }
    return results;
  };
}

function notSent(clientId: string, name: string | null, detail: string): BclTestResult {
  return { clientId, name, outcome: 'not_sent', httpStatus: null, detail };
}
