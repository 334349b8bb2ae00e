import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { Database } from '../db/schema.ts';

/**
 * oidc-provider's storage adapter over Kysely (one instance per model name). Clients are not stored
 * here: `clients.ts` answers the `Client` model from the `application` table.
 *
 * Rows are keyed by `storageId(id)`, a SHA-256 digest of the provider's id: for codes and tokens
 * that id is the bearer value itself, and a copy of the database must not be a copy of live
 * credentials. The payload is stored without its `jti` (sessions excepted) and gets it back when
 * read by id. Tooling that starts from a token value (introspection audit, code-reuse audit) finds
 * the row with `storageId(value)`.
 */
export function storageId(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('base64url');
}

/** Models whose rows carry a grant id, so that `revokeByGrantId` finds them. */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

type Row = Pick<Database['oidc_payload'], 'payload' | 'expires_at' | 'consumed_at'>;

export class KyselyAdapter implements Adapter {
  readonly model: string;
  readonly #db: Kysely<Database>;
  readonly #now: () => number;

  constructor(model: string, db: Kysely<Database>, now: () => number = Date.now) {
    this.model = model;
    this.#db = db;
    this.#now = now;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const { jti, consumed: _consumed, ...rest } = payload;
    // A session keeps its id in the payload: `findByUid` must give it back, and the session cookie
    // that carries it is signed with keys that never reach the database.
    if (this.model === 'Session' && jti !== undefined) rest.jti = jti;
    const expiresAt = typeof expiresIn === 'number' ? this.#now() + expiresIn * 1000 : null;
    const columns = {
      payload: JSON.stringify(rest),
      grant_id: GRANTABLE.has(this.model) ? (payload.grantId ?? null) : null,
      user_id: payload.accountId ?? null,
      client_id: payload.clientId ?? null,
      uid: this.model === 'Session' ? (payload.uid ?? null) : null,
      user_code: payload.userCode ?? null,
      expires_at: expiresAt,
    };
    await this.#db
      .insertInto('oidc_payload')
      .values({ model: this.model, id: storageId(id), consumed_at: null, ...columns })
      .onConflict((conflict) => conflict.columns(['model', 'id']).doUpdateSet(columns))
      .execute();
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const row = await this.#db
      .selectFrom('oidc_payload')
      .select(['payload', 'expires_at', 'consumed_at'])
      .where('model', '=', this.model)
      .where('id', '=', storageId(id))
      .executeTakeFirst();
    return this.#revive(row, id);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const row = await this.#db
      .selectFrom('oidc_payload')
      .select(['payload', 'expires_at', 'consumed_at'])
      .where('model', '=', this.model)
      .where('uid', '=', uid)
      .executeTakeFirst();
    return this.#revive(row);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const row = await this.#db
      .selectFrom('oidc_payload')
      .select(['payload', 'expires_at', 'consumed_at'])
      .where('model', '=', this.model)
      .where('user_code', '=', userCode)
      .executeTakeFirst();
    return this.#revive(row);
  }

  /**
   * Marks a code or refresh token used. Atomic: of N concurrent redemptions exactly one gets past
   * this point; the others see `invalid_grant`, as a replay would.
   */
  async consume(id: string): Promise<void> {
    const result = await this.#db
      .updateTable('oidc_payload')
      .set({ consumed_at: this.#now() })
      .where('model', '=', this.model)
      .where('id', '=', storageId(id))
      .where('consumed_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) {
      throw new errors.InvalidGrant('grant already used or revoked');
    }
  }

  async destroy(id: string): Promise<void> {
    await this.#db
      .deleteFrom('oidc_payload')
      .where('model', '=', this.model)
      .where('id', '=', storageId(id))
      .execute();
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#db
      .deleteFrom('oidc_payload')
      .where('model', '=', this.model)
      .where('grant_id', '=', grantId)
      .execute();
  }

  #revive(row: Row | undefined, id?: string): AdapterPayload | undefined {
    if (!row) return undefined;
    if (row.expires_at !== null && row.expires_at <= this.#now()) return undefined;
    const payload = JSON.parse(row.payload) as AdapterPayload;
    if (id !== undefined) payload.jti = id;
    if (row.consumed_at !== null) payload.consumed = Math.floor(row.consumed_at / 1000);
    return payload;
  }
}

/** Deletes rows whose lifetime is over; returns how many went. */
export async function purgeExpiredPayloads(db: Kysely<Database>, now = Date.now()): Promise<number> {
  const result = await db
    .deleteFrom('oidc_payload')
    .where('expires_at', 'is not', null)
    .where('expires_at', '<=', now)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
