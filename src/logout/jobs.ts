import type { LogoutReason } from '../audit/events.ts';
import type { Config } from '../config/load.ts';
import type { KeyStore, LoadedSigningKey } from '../keys/types.ts';
import { type LogoutJob, newJti } from './job-transport.ts';
import type { QueuedLogout } from './types.ts';

/**
 * How long a claimed attempt may take before another worker may take the job over (its worker died
 * mid-attempt). An attempt starts within one request timeout of its claim (the worker starts none
 * later) and, gate included, is bounded by the request timeout; a second more covers its record.
 */
export function leaseMs(config: Config): number {
  return 2 * config.logout.requestTimeoutMs + 1000;
}

/**
 * The logout token's lifetime. Each attempt signs its token afresh (delivery.ts), so this need only
 * cover one attempt and a receiver's clock; it stays as it was, the retry schedule's length, and at
 * least two minutes. The job's own `iat`, `exp` and `kid` record when and under which key it was
 * queued.
 */
export function logoutTokenLifetimeSeconds(config: Config): number {
  const backoff = config.logout.retryBackoffSeconds.reduce((sum, seconds) => sum + seconds, 0);
  const attempts = config.logout.retryBackoffSeconds.length + 1;
  return Math.max(120, backoff + attempts * Math.ceil(config.logout.requestTimeoutMs / 1000) + 60);
}

export type NewJobs = (
  userId: number | null,
  sub: string,
  reason: LogoutReason,
  clients: ReadonlyArray<{ clientId: string; sid: string | null }>,
) => LogoutJob[];

/**
 * The loaded key that signs a logout token: the active key. With none loaded (the active key went
 * and none took its place yet, as in a restored backup, or the process started on a database without
 * keys): the job's own key (`kid`, the key it was queued under) while it is loaded, else the next key,
 * else the retired key published longest (`loadedKeys()` lists active, next, then retired keys
 * newest first). A logout is not held back for want of an active key: every loaded key is one JWKS
 * publishes (next, active and retired keys; a key leaves the store as it leaves JWKS), so a
 * relying party can verify the token, while a logout never sent leaves the user signed in there.
 * None only when no key is loaded at all: the attempt then ends `signing_kid_retired`, recorded.
 */
export function logoutSigningKey<Key extends Pick<LoadedSigningKey, 'kid' | 'status'>>(
  keys: readonly Key[],
  kid = '',
): Key | undefined {
  return keys.find((key) => key.status === 'active') ?? keys.find((key) => key.kid === kid) ?? keys[0];
}

/**
 * The signing key a new job names: the one an attempt made now would sign with
 * (`logoutSigningKey`), or none ('') with no key loaded. Never a reason not to queue: the change that
 * causes the logout queues it in its own transaction, which must neither fail nor lose the logout
 * for want of a key; each attempt chooses again among the keys loaded by then (delivery.ts).
 */
function kidForNewJob(keyStore: Pick<KeyStore, 'loadedKeys'>): string {
  return logoutSigningKey(keyStore.loadedKeys())?.kid ?? '';
}

/** Builds the jobs of one logout: one per client, all pinned to the same time and signing key. */
export function jobFactory(deps: {
  config: Config;
  keyStore: Pick<KeyStore, 'loadedKeys'>;
  now: () => number;
}): NewJobs {
  return (userId, sub, reason, clients) => {
    if (clients.length === 0) return [];
    const iat = Math.floor(deps.now() / 1000);
    const exp = iat + logoutTokenLifetimeSeconds(deps.config);
    const kid = kidForNewJob(deps.keyStore);
    return clients.map(({ clientId, sid }) => ({
      trigger: reason,
      userId,
      sub,
      clientId,
      jti: newJti(),
      iat,
      exp,
      kid,
      sid,
    }));
  };
}

/** The jobs as `logout_required` reports them. */
export function queuedLogouts(jobs: readonly LogoutJob[]): QueuedLogout[] {
  return jobs.map((job) => ({
    userId: job.userId,
    clientId: job.clientId,
    reason: job.trigger,
    jti: job.jti,
    withSid: job.sid !== null,
  }));
}
