import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/** What a user may hold here after signing in: a browser session, a code, a token. */
const SIGN_IN_MODELS = ['Session', 'AuthorizationCode', 'AccessToken', 'RefreshToken'] as const;
const IDS_PER_QUERY = 1000;

/**
 * Of `userIds`, those who hold a live (unrevoked, unexpired) session, code or token in aa-oidc's own
 * database: people who signed in here. The poller asks it of users it sees for the first time already
 * inactive, who signed in before Alliance Auth deactivated them.
 */
export async function usersHoldingSignIns(
  db: Kysely<Database>,
  userIds: readonly number[],
  now: number,
): Promise<Set<number>> {
  const holding = new Set<number>();
  for (let start = 0; start < userIds.length; start += IDS_PER_QUERY) {
    const rows = await db
      .selectFrom('oidc_payload')
      .select('user_id')
      .distinct()
      .where('user_id', 'in', userIds.slice(start, start + IDS_PER_QUERY).map(String))
      .where('model', 'in', [...SIGN_IN_MODELS])
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .execute();
    for (const row of rows) holding.add(Number(row.user_id));
  }
  return holding;
}
