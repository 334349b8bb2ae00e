import type { PayloadRow, StoredPayload } from '../tokens/store.ts';
import { RequestMemo } from './request-memo.ts';

/**
 * Authorization codes and refresh tokens this process wrote, kept as written so that their
 * redemption (normally on the process that issued them) does not read them back: the code an
 * authorization wrote, the refresh token a code exchange or a refresh wrote.
 *
 * Why that is safe: their payloads never change once written; only their consumed or revoked state
 * does, and the redemption's consume is a conditional UPDATE in the database (adapter.ts `consume`)
 * that fails when the row was consumed or revoked meanwhile, by any process. A row is kept only once
 * its write has committed, and a find takes it (it is gone from memory after its first find), so that
 * a second presentation in this process reads the database and sees it consumed, as without this.
 * When a consume of a row found here fails, the adapter reads the row and does what the provider does
 * for what it then sees (`takenAt`): a replay revokes the grant.
 *
 * Bounded: at most `max` rows of each model, the oldest out first, and rows past their expiry go as
 * new ones come. A row not here (written by another process, or gone) is read from the database.
 */
export const MAX_OWN_CODES = 5_000;
export const MAX_OWN_REFRESH_TOKENS = 5_000;

/** The models whose rows are kept, and the one request a find of each may take one for. */
const REDEEMED_BY = new Map([
  ['AuthorizationCode', 'authorization_code'],
  ['RefreshToken', 'refresh_token'],
]);

/** A kept row: what a find returns of it. */
type OwnRow = StoredPayload & { expires_at: number };

export class OwnCodes {
  readonly #max: ReadonlyMap<string, number>;
  readonly #rows = new Map<string, Map<string, OwnRow>>();
  /** When this request took a row, by `<model> <storage id>`. */
  readonly #taken = new RequestMemo<string, number>();

  constructor(maxCodes = MAX_OWN_CODES, maxRefreshTokens = MAX_OWN_REFRESH_TOKENS) {
    this.#max = new Map([
      ['AuthorizationCode', maxCodes],
      ['RefreshToken', maxRefreshTokens],
    ]);
    for (const model of REDEEMED_BY.keys()) this.#rows.set(model, new Map());
  }

  /** How many rows of `model` are kept. */
  size(model: string): number {
    return this.#rows.get(model)?.size ?? 0;
  }

  /**
   * Rows whose write has committed, at `now`: the codes and refresh tokens among them are kept
   * (never a row written consumed or revoked, nor one without an expiry).
   */
  wrote(rows: readonly PayloadRow[], now: number): void {
    for (const row of rows) {
      const kept = this.#rows.get(row.model);
      if (!kept || row.consumed_at != null || row.revoked_at != null) continue;
      if (typeof row.expires_at !== 'number' || row.expires_at <= now) continue;
      dropExpired(kept, now);
      const max = this.#max.get(row.model)!;
      kept.delete(row.id);
      if (kept.size >= max) kept.delete(kept.keys().next().value!);
      kept.set(row.id, {
        payload: row.payload,
        expires_at: row.expires_at,
        consumed_at: null,
        revoked_at: null,
        format: row.format ?? null,
        value_sha256: row.value_sha256 ?? null,
      });
    }
  }

  /**
   * The row of `model` kept under `id`, taken out, when `request` redeems one (a code at the token
   * endpoint's `authorization_code` grant, a refresh token at its `refresh_token` grant); the request
   * remembers when (`takenAt`). Undefined otherwise: other requests (introspection, revocation) read
   * the database, whose revoked state they answer from.
   */
  take(
    request: RedeemingRequest | undefined,
    model: string,
    id: string,
    now: number,
  ): StoredPayload | undefined {
    const grantType = REDEEMED_BY.get(model);
    if (!request || grantType === undefined) return undefined;
    const oidc = request.oidc;
    if (oidc?.route !== 'token' || oidc.params?.grant_type !== grantType) return undefined;
    const kept = this.#rows.get(model)!;
    const row = kept.get(id);
    if (!row) return undefined;
    kept.delete(id);
    this.#taken.set(request, `${model} ${id}`, now);
    return row;
  }

  /** When `request` took the row of `model` kept under `id`, or undefined when it did not. */
  takenAt(request: object | undefined, model: string, id: string): number | undefined {
    return this.#taken.peek(request, `${model} ${id}`);
  }
}

/** What `take` reads of a provider request. */
export interface RedeemingRequest {
  oidc?: { route?: string; params?: { grant_type?: unknown } } | undefined;
}

/**
 * Drops the rows past their expiry from the front, the oldest: they expire first where lifetimes are
 * alike, and a row behind an unexpired one goes by count or by its find (which checks its expiry).
 */
function dropExpired(kept: Map<string, OwnRow>, now: number): void {
  for (const [id, row] of kept) {
    if (row.expires_at > now) return;
    kept.delete(id);
  }
}
