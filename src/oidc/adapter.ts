import type { Kysely } from 'kysely';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { Database } from '../db/schema.ts';
import { sha256Hex } from '../logging/secrets.ts';
import { setNewest } from '../util/bounded-map.ts';
import { unbatchedWrites, type WriteBatch } from '../db/write-batch.ts';
import {
  type AdapterRow,
  consumePayload,
  deletePayload,
  deletePayloadsOfGrant,
  findBearerPayloads,
  findPayload,
  findPayloadBy,
  findPayloadWithPosition,
  findSessionAndGrant,
  type PayloadRow,
  payloadConsumes,
  payloadRowWrites,
  payloadRowWritesAtEpoch,
  revokePayload,
  revokePayloadsOfGrant,
  storageId,
  type StoredPayload,
  type TokenRow,
  writePayloadRow,
} from '../tokens/store.ts';
import type { ProcessChangeEpochs } from './change-epoch-cache.ts';
import { KEPT_MODELS, keptKeysWritten } from './kept-rows.ts';
import type { OwnCodes } from './own-codes.ts';
import { currentRequest, revokeGrantAsProvider, withinRequest } from './provider-internals.ts';
import { RequestMemo } from './request-memo.ts';
import { sameText } from '../util/same-text.ts';

/**
 * oidc-provider's storage adapter (one instance per model name), over the token store
 * (src/tokens/store.ts). Clients are not stored here: `clients.ts` answers the `Client` model from
 * the applications. The payload is stored without its `jti` (sessions excepted) and gets it back
 * when read by id.
 */

/** Models whose rows carry a grant id, so that `revokeByGrantId` finds them. */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** Models whose codes and tokens are revoked in place (`revoked_at`) rather than deleted. */
const REVOCABLE = new Set(['AccessToken', 'ClientCredentials', 'RefreshToken', 'AuthorizationCode']);

/** Models whose rows name the session and grant that the provider reads next. */
const READ_AHEAD = new Set(['AuthorizationCode', 'RefreshToken', 'AccessToken']);

/**
 * Routes where a found code or token's session (its binding, checked as the token is found) and
 * grant are read next: the token endpoint, userinfo and introspection.
 */
const READ_AHEAD_ROUTES = new Set(['token', 'userinfo', 'introspection']);

/** Models whose value may be a JWT access token: found by the token, never by its `jti` alone. */
const STRUCTURED = new Set(['AccessToken', 'ClientCredentials']);

/**
 * Payload members the access-token format step (access-token-format.ts) adds for the adapter: they
 * become columns, never part of the stored payload.
 */
export const FORMAT_MARKER = 'aa_oidc_format';
export const VALUE_DIGEST_MARKER = 'aa_oidc_value_sha256';
/**
 * An adapter whose `upsert` may be given the change epoch the `save_bearer` stage's decision saw
 * (save-bearer.ts): the row is then written only while the epoch is still that one; otherwise
 * nothing is written and `upsert` throws `ChangeEpochMoved`. An argument of its own rather than a
 * member of the payload, which would be a copy of the payload per token (and the adapter's copy
 * without it another).
 */
export interface EpochAwareAdapter extends Adapter {
  upsert(id: string, payload: AdapterPayload, expiresIn: number, atEpoch?: number): Promise<void>;
}

/** A save made at a change epoch (`EpochAwareAdapter`) found the epoch moved: nothing was written. */
export class ChangeEpochMoved extends Error {
  constructor() {
    super('the change epoch moved before the token was written');
    this.name = 'ChangeEpochMoved';
  }
}

/**
 * What the token endpoint may do around the adapter's writes (code-exchange.ts): hold back the
 * token rows of a code exchange so that they are written in one transaction with the code's
 * issued-code row (and those of a refresh, written in one statement), and consume a code together
 * with its issued-code row.
 */
export interface AdapterWriteHooks {
  /** True when the row was taken (it will be written later, in a transaction of the taker's). */
  deferWrite?(row: PayloadRow): boolean;
  /**
   * Consumes an authorization code in place of the adapter and records it (the issued-code audit),
   * atomically: false when the code was consumed or revoked already.
   */
  consumeCode?(code: { value: string; id: string; at: number }): Promise<boolean>;
  /**
   * True when the consume of a refresh token or a code was taken, to be written in one transaction
   * with the rows of its rotation or exchange (the taker writes them, code-exchange.ts). When that
   * write finds it consumed or revoked meanwhile, the taker calls `refused`, which does what the
   * adapter does for a consume that failed and throws the provider's error.
   */
  holdConsume?(consume: HeldConsume): boolean;
  /**
   * The provider revoked these codes and tokens in the current request (`destroy`, `revokeByGrantId`),
   * for `reason` (`providerRevocationReason`): only the rows this request's UPDATE found live, so that
   * of concurrent requests that revoke one grant each row is told by one.
   */
  revoked?(rows: readonly TokenRow[], reason: string): void;
  /**
   * A revocation the provider asked for in the current request (`destroy`, `revokeByGrantId`) failed
   * with `error`, for `reason`: told before the error goes on to the provider.
   */
  revocationFailed?(reason: string, error: unknown): void;
}

/** A refresh token's or a code's consume held back until its tokens are written (`holdConsume`). */
export interface HeldConsume {
  model: 'RefreshToken' | 'AuthorizationCode';
  /** Its storage id. */
  id: string;
  /** Throws the provider's answer to a consume that failed (a replay also revokes the grant). */
  refused(): Promise<never>;
  /**
   * The consume written on its own, as the adapter would have (false when it was consumed or revoked
   * already): for a request the provider refused after it, which uses the code or token up as before.
   */
  consumeAlone(): Promise<boolean>;
}

/**
 * `structuredTokenId` of the value read last: introspection and revocation ask the access-token,
 * client-credentials and refresh-token adapters about one presented value, each reading its `jti`.
 */
let lastStructured: string | undefined;
let lastStructuredId: string | undefined;

/** The `jti` of a compact JWS, or undefined when the value is not one. */
function structuredTokenId(value: string): string | undefined {
  if (value !== lastStructured) {
    lastStructuredId = readStructuredTokenId(value);
    lastStructured = value;
  }
  return lastStructuredId;
}

function readStructuredTokenId(value: string): string | undefined {
  // An opaque token has no dot: nothing to split.
  if (!value.includes('.')) return undefined;
  const parts = value.split('.');
  if (parts.length !== 3 || value.length > 16_384) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { jti?: unknown };
    return typeof claims.jti === 'string' && claims.jti.length > 0 ? claims.jti : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `jti` of a JWT access token that an introspection request found stored, the whole token
 * matching the digest kept at issuance, but revoked or expired: its `token_introspected` names it
 * as `token_issued` and `token_revoked` did (introspection-audit.ts). Kept only for such a token,
 * never for a valid one (the provider's entity carries that one's `jti`) nor for a JWT not found
 * (its `jti` is only what its unverified payload claims).
 */
const inactiveStoredJwt = new RequestMemo<'jti', string>();

/** The `jti` the adapter kept for `request` (`inactiveStoredJwt`), if any. */
export function inactiveStoredJwtId(request: object): string | undefined {
  return inactiveStoredJwt.peek(request, 'jti');
}

/**
 * `storageId` of the value hashed last: introspection and revocation look one presented value up in
 * three models at once, each with its own adapter.
 */
let lastHashed: string | undefined;
let lastStorageId = '';
function storageIdOfPresented(value: string): string {
  if (value !== lastHashed) {
    lastStorageId = storageId(value);
    lastHashed = value;
  }
  return lastStorageId;
}

/**
 * `storageId` of the grants that tokens found lately name: every userinfo and introspection request
 * reads its token's grant ahead (`readAhead`), and the tokens in use name a few grants again and
 * again. At most `GRANT_IDS_KEPT`, the oldest first out.
 */
const grantStorageIds = new Map<string, string>();
const GRANT_IDS_KEPT = 1_000;
function grantStorageId(grantId: string): string {
  let id = grantStorageIds.get(grantId);
  if (id === undefined) {
    id = storageId(grantId);
    setNewest(grantStorageIds, grantId, id, GRANT_IDS_KEPT);
  }
  return id;
}

/** The revocation reason recorded when the provider itself revokes (endpoint, logout, grant). */
function providerRevocationReason(): string {
  const oidc = currentRequest()?.oidc;
  const route = oidc?.route;
  if (route === 'revocation') return 'revocation_endpoint';
  if (route === 'end_session') return 'logout';
  if (route === 'token') {
    // oidc-provider revokes the grant when a consumed code is presented again (code-reuse detection).
    return oidc?.params?.grant_type === 'authorization_code' ? 'code_reuse' : 'grant_revoked';
  }
  return 'provider';
}

/**
 * Looks a presented value up in the access-token, client-credentials and refresh-token models at
 * once. oidc-provider's introspection and revocation endpoints ask the three models for the same
 * value at the same time; the finds of one request that are in flight together share one query
 * (three lookups by primary key in one statement). Once that query has answered, the next find
 * reads the database again. Outside a provider request every find is its own query.
 */
export interface BearerLookup {
  find(db: Kysely<Database>, model: string, id: string): Promise<StoredPayload | undefined>;
  /** A session by its uid (read ahead by `readAhead` in this request, or now). */
  findByUid(db: Kysely<Database>, model: string, uid: string): Promise<StoredPayload | undefined>;
  /**
   * At the token endpoint, the code or refresh token being redeemed names the session it is bound
   * to and its grant, which the provider reads next (the session binding, then the grant); so does
   * the access token of a userinfo request and the token being introspected. Both are read now, in
   * one query. Each read-ahead row answers one later find of the same request, once.
   */
  readAhead(db: Kysely<Database>, payload: AdapterPayload): void;
  /**
   * This process wrote the rows `keys` name (`<model> <storage id>`, `Session uid <uid>`), or rows it
   * cannot name (no keys): what is kept of them goes (kept-rows.ts).
   */
  wrote(keys?: readonly string[]): void;
  /**
   * The row of a kept model kept under `<model> <storage id>` now (as of the last read of the change
   * log), or undefined.
   */
  keptNow(model: string, id: string): StoredPayload | undefined;
}

/** For each model a presented bearer value is looked up in, its row among the value's rows. */
const ROW_OF_MODEL = new Map(
  ['AccessToken', 'ClientCredentials', 'RefreshToken'].map((model) => [
    model,
    ({ rows }: BearerRows) => rows.find((row) => row.model === model),
  ]),
);

/** What the lookup needs of the change epochs (change-epoch-cache.ts) to keep rows across requests. */
export type LookupEpochs = Pick<ProcessChangeEpochs, 'note' | 'synced' | 'kept'>;

export function bearerLookup(
  request: () => object | undefined = currentRequest,
  epochs?: LookupEpochs,
): BearerLookup {
  const inFlight = new RequestMemo<string, Promise<BearerRows>>();
  const ahead = new RequestMemo<string, Promise<StoredPayload | undefined>>();
  const kept = epochs?.kept;
  /** The read-ahead row for `key` in this request, once. */
  const takeAhead = (ctx: object, key: string) => {
    const pending = ahead.peek(ctx, key);
    if (pending) ahead.forget(ctx, key, pending);
    return pending;
  };
  /**
   * The rows kept under both keys of `keys`, once this request's read of the change log has dropped
   * what changed (kept-rows.ts); undefined when one is not kept.
   */
  const keptRows = async (ctx: object, keys: readonly [string, string]) => {
    if (!kept || !epochs || !kept.peek(keys[0]) || !kept.peek(keys[1])) return undefined;
    await epochs.synced(ctx);
    const rows = [kept.peek(keys[0]), kept.peek(keys[1])] as const;
    return rows[0] !== undefined && rows[1] !== undefined ? rows : undefined;
  };
  /** The rows kept under `key`, as `keptRows` for one key. */
  const keptRowsOf = async (ctx: object, key: string) => {
    if (!kept || !epochs || !kept.peek(key)) return undefined;
    await epochs.synced(ctx);
    return kept.peek(key);
  };
  const bearerRows = async (db: Kysely<Database>, ctx: object, id: string): Promise<BearerRows> => {
    const key = `bearer ${id}`;
    const hit = await keptRowsOf(ctx, key);
    if (hit) return { rows: hit as BearerRows['rows'], changeEpoch: undefined };
    const ticket = kept?.ticket() ?? 0;
    const found = await findBearerPayloads(db, id);
    // The statement carried the change epoch: what this request reads from memory next is checked
    // against it (change-epoch-cache.ts).
    epochs?.note(ctx, found.changeEpoch);
    // A refresh token is redeemed once: rows of a value that is one are not kept.
    if (found.rows.every((row) => row.model !== 'RefreshToken'))
      kept?.keep(key, found.rows, found.position, ticket);
    return found;
  };
  /** One row of a kept model by `column`, from memory or read now (and kept). */
  const keptRow = async (
    db: Kysely<Database>,
    ctx: object | undefined,
    model: string,
    column: 'id' | 'uid',
    value: string,
  ): Promise<StoredPayload | undefined> => {
    if (!ctx || !kept || !epochs || !KEPT_MODELS.has(model)) {
      return column === 'id' ? findPayload(db, model, value) : findPayloadBy(db, model, 'uid', value);
    }
    const key = column === 'id' ? `${model} ${value}` : `${model} uid ${value}`;
    const hit = await keptRowsOf(ctx, key);
    if (hit) return hit[0];
    // A miss (no row) is `[]`: only a row not kept is undefined.
    const rows = await kept.share<readonly StoredPayload[]>(
      key,
      () => epochs.synced(ctx),
      () => kept.peek(key),
      async () => {
        const ticket = kept.ticket();
        const found = await findPayloadWithPosition(db, model, column, value);
        kept.keep(key, found.rows, found.position, ticket);
        return found.rows;
      },
    );
    return rows[0];
  };
  const sessionAndGrant = async (db: Kysely<Database>, ctx: object, uid: string, grantKey: string) => {
    const keys = [`Session uid ${uid}`, `Grant ${grantKey}`] as const;
    const hit = await keptRows(ctx, keys);
    if (hit) return { session: hit[0]![0], grant: hit[1]![0] };
    const load = async (): Promise<SessionAndGrant> => {
      const ticket = kept?.ticket() ?? 0;
      const found = await findSessionAndGrant(db, uid, grantKey);
      if (found.session) kept?.keep(keys[0], [found.session], found.position, ticket);
      if (found.grant) kept?.keep(keys[1], [found.grant], found.position, ticket);
      return found;
    };
    if (!kept || !epochs) return load();
    return kept.share<SessionAndGrant>(
      // Apart from every key `keptRow` shares a load under (a model's name comes first there).
      `session and grant ${uid}\n${grantKey}`,
      () => epochs.synced(ctx),
      () => {
        const session = kept.peek(keys[0]);
        const grant = kept.peek(keys[1]);
        return session && grant ? { session: session[0], grant: grant[0] } : undefined;
      },
      load,
      keys,
    );
  };
  return {
    // Not async: a find answers with the promise it has (the read-ahead, the shared read), without
    // an async frame of its own around it (three to five finds per userinfo and introspection).
    find(db, model, id) {
      const ctx = request();
      if (ctx && model === 'Grant') {
        const read = takeAhead(ctx, `Grant ${id}`);
        if (read) return read;
      }
      const rowOf = ctx ? ROW_OF_MODEL.get(model) : undefined;
      if (!ctx || !rowOf) return keptRow(db, ctx, model, 'id', id);
      // The finds of one value in flight together share its read, forgotten once it has answered
      // (attached once, to the read made, not by every find that shares it).
      let pending = inFlight.peek(ctx, id);
      if (!pending) {
        const made = bearerRows(db, ctx, id);
        const settled = () => inFlight.forget(ctx, id, made);
        made.then(settled, settled);
        inFlight.set(ctx, id, made);
        pending = made;
      }
      return pending.then(rowOf);
    },
    findByUid(db, model, uid) {
      const ctx = request();
      const read = ctx && model === 'Session' ? takeAhead(ctx, `Session ${uid}`) : undefined;
      return read ?? keptRow(db, ctx, model, 'uid', uid);
    },
    readAhead(db, payload) {
      const ctx = request() as { oidc?: { route?: string } } | undefined;
      const { sessionUid, grantId, expiresWithSession } = payload;
      if (!ctx || !READ_AHEAD_ROUTES.has(ctx.oidc?.route ?? '') || !expiresWithSession) return;
      if (typeof sessionUid !== 'string' || typeof grantId !== 'string') return;
      const grantKey = grantStorageId(grantId);
      const both = sessionAndGrant(db, ctx, sessionUid, grantKey);
      // Unused read-ahead rows must not reject unobserved; a find that takes one sees its failure.
      both.catch(() => undefined);
      ahead.set(
        ctx,
        `Session ${sessionUid}`,
        both.then((rows) => rows.session),
      );
      ahead.set(
        ctx,
        `Grant ${grantKey}`,
        both.then((rows) => rows.grant),
      );
    },
    wrote(keys) {
      kept?.wrote(keys);
    },
    keptNow(model, id) {
      return KEPT_MODELS.has(model) ? kept?.peek(`${model} ${id}`)?.[0] : undefined;
    },
  };
}

type SessionAndGrant = Pick<Awaited<ReturnType<typeof findSessionAndGrant>>, 'session' | 'grant'>;

type BearerRows = Pick<Awaited<ReturnType<typeof findBearerPayloads>>, 'rows' | 'changeEpoch'>;

export class KyselyAdapter implements Adapter {
  readonly model: string;
  readonly #db: Kysely<Database>;
  readonly #now: () => number;
  readonly #hooks: AdapterWriteHooks;
  readonly #lookup: BearerLookup | undefined;
  readonly #writes: WriteBatch | undefined;
  readonly #own: OwnCodes | undefined;

  /**
   * `lookup`, shared by the adapters of one provider, lets one request's concurrent finds share a
   * query; `writes`, rows saved by concurrent requests share a commit (src/db/write-batch.ts); `own`,
   * the codes and refresh tokens this process wrote, found without a read (own-codes.ts).
   */
  constructor(
    model: string,
    db: Kysely<Database>,
    now: () => number = Date.now,
    hooks: AdapterWriteHooks = {},
    lookup?: BearerLookup,
    writes?: WriteBatch,
    own?: OwnCodes,
  ) {
    this.model = model;
    this.#db = db;
    this.#now = now;
    this.#hooks = hooks;
    this.#lookup = lookup;
    this.#writes = writes;
    this.#own = own;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number, atEpoch?: number): Promise<void> {
    const {
      jti,
      consumed: _consumed,
      [FORMAT_MARKER]: format,
      [VALUE_DIGEST_MARKER]: valueSha256,
      ...rest
    } = payload as AdapterPayload & Record<string, unknown>;
    // A session keeps its id in the payload: `findByUid` must give it back, and the session cookie
    // that carries it is signed with keys that never reach the database.
    if (this.model === 'Session' && jti !== undefined) rest.jti = jti;
    const expiresAt = typeof expiresIn === 'number' ? this.#now() + expiresIn * 1000 : null;
    // One literal, the columns in `ADAPTER_COLUMNS` order.
    const row: PayloadRow & AdapterRow = {
      model: this.model,
      id: storageId(id),
      consumed_at: null,
      payload: JSON.stringify(rest),
      grant_id: GRANTABLE.has(this.model) ? (payload.grantId ?? null) : null,
      user_id: payload.accountId ?? null,
      client_id: payload.clientId ?? null,
      uid: this.model === 'Session' ? (payload.uid ?? null) : null,
      user_code: payload.userCode ?? null,
      expires_at: expiresAt,
      format: STRUCTURED.has(this.model) ? (format === 'jwt' ? 'jwt' : 'opaque') : null,
      value_sha256: typeof valueSha256 === 'string' ? valueSha256 : null,
    };
    if (this.model === 'Session' && this.#unchangedSession(row)) return;
    if (typeof atEpoch === 'number') {
      const written = await payloadRowWritesAtEpoch(this.#writes ?? unbatchedWrites(this.#db))(
        [row],
        atEpoch,
      );
      if (!written) throw new ChangeEpochMoved();
    } else {
      if (this.#hooks.deferWrite?.(row)) return;
      await (this.#writes ? payloadRowWrites(this.#writes)([row]) : writePayloadRow(this.#db, row));
      // A code or refresh token written now (a held-back one is kept once written, code-exchange.ts).
      this.#own?.wrote([row], this.#now());
    }
    // What is kept of it goes (a held-back session's, once written: code-exchange.ts).
    if (KEPT_MODELS.has(this.model)) this.#lookup?.wrote(keptKeysWritten(row));
  }

  /**
   * Whether saving `row` (a session) would write what is stored already: the provider saves the
   * session again at the end of every request that loaded it (an SSO authorization among them),
   * renewing its expiry, which counts in whole seconds. When the row kept for it (current as of this
   * request's read of the change log) has the same payload, the same second of expiry included, and
   * its `expires_at` is within that second, the write is skipped: rewriting it would store the same
   * session and, through the change log's trigger, drop it (and its uid) from every process's kept
   * rows, so that the next request and the code exchange after it read it (and its grant) again.
   */
  #unchangedSession(row: PayloadRow): boolean {
    const kept = this.#lookup?.keptNow('Session', row.id);
    if (!kept || kept.revoked_at !== null || kept.consumed_at !== null) return false;
    if (kept.expires_at === null || typeof row.expires_at !== 'number') return false;
    if (kept.expires_at <= this.#now() || kept.expires_at < row.expires_at - 1000) return false;
    return kept.payload === row.payload;
  }

  /**
   * The row a presented value names. A JWT access token is found by its `jti` and only when the
   * whole token matches the digest kept at issuance; a JWT's `jti` presented alone finds nothing.
   */
  async find(id: string): Promise<AdapterPayload | undefined> {
    const jti = STRUCTURED.has(this.model) ? structuredTokenId(id) : undefined;
    // Refresh tokens are opaque: a JWT presented at introspection or revocation is none, and looking
    // it up by its whole value would be a statement of its own beside the access-token lookup by `jti`.
    if (this.model === 'RefreshToken' && structuredTokenId(id) !== undefined) return undefined;
    const key = storageIdOfPresented(jti ?? id);
    const row =
      this.#own?.take(currentRequest(), this.model, key, this.#now()) ??
      (await (this.#lookup
        ? this.#lookup.find(this.#db, this.model, key)
        : findPayload(this.#db, this.model, key)));
    if (row?.format === 'jwt') {
      if (jti === undefined || row.value_sha256 === null) return undefined;
      const digest = sha256Hex(id);
      if (!sameText(digest, row.value_sha256)) return undefined;
      const payload = this.#revive(row, jti);
      if (!payload) {
        const ctx = currentRequest();
        if (ctx?.oidc?.route === 'introspection') inactiveStoredJwt.set(ctx, 'jti', jti);
      }
      return this.#readAhead(payload);
    }
    if (jti !== undefined) return undefined;
    return this.#readAhead(this.#revive(row, id));
  }

  #readAhead(payload: AdapterPayload | undefined): AdapterPayload | undefined {
    if (payload && READ_AHEAD.has(this.model)) this.#lookup?.readAhead(this.#db, payload);
    return payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    if (!this.#lookup) return this.#findByColumn('uid', uid);
    return this.#revive(await this.#lookup.findByUid(this.#db, this.model, uid));
  }

  findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#findByColumn('user_code', userCode);
  }

  async #findByColumn(column: 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    return this.#revive(await findPayloadBy(this.#db, this.model, column, value));
  }

  /**
   * Marks a code or refresh token used. Atomic: of N concurrent redemptions exactly one gets past
   * this point; the others see `invalid_grant`, as a replay would. Through the write batch, the
   * consumes of one turn go in one statement on PostgreSQL (`payloadConsumes`). At the token
   * endpoint the consume is held back instead and written with the tokens it yields
   * (`holdConsume`): the same conditional UPDATE, in their transaction.
   */
  async consume(id: string): Promise<void> {
    const key = storageId(id);
    const ctx = currentRequest();
    const consumeAlone = async () => {
      const consumeCode = this.model === 'AuthorizationCode' ? this.#hooks.consumeCode : undefined;
      return consumeCode
        ? consumeCode({ value: id, id: key, at: this.#now() })
        : this.#writes
          ? payloadConsumes(this.#writes)({ model: this.model, id: key, at: this.#now() })
          : (await consumePayload(this.#db, this.model, key, this.#now())) !== undefined;
    };
    // Called once the provider's route is done: as part of the request still (its revocations' reason).
    const inRequest = <T>(work: () => Promise<T>) => (ctx ? withinRequest(ctx, work) : work());
    if (
      (this.model === 'RefreshToken' || this.model === 'AuthorizationCode') &&
      this.#hooks.holdConsume?.({
        model: this.model,
        id: key,
        refused: () => inRequest(() => this.#refused(ctx, id, key)),
        consumeAlone: () => inRequest(consumeAlone),
      })
    )
      return;
    if (!(await consumeAlone())) await this.#refused(ctx, id, key);
  }

  /** What a consume of `id` that failed answers (in `ctx`, the request that presented it). */
  async #refused(ctx: ReturnType<typeof currentRequest>, id: string, key: string): Promise<never> {
    const takenAt = this.#own?.takenAt(ctx, this.model, key);
    if (ctx && takenAt !== undefined) await this.#refusedOwn(ctx, id, key, takenAt);
    throw new errors.InvalidGrant('grant already used or revoked');
  }

  /**
   * A code or refresh token found in memory (own-codes.ts) whose consume failed: the row is read now,
   * and what the provider would have done had it read that row at the find (at `takenAt`) is done.
   * Revoked or gone: not found. Consumed by then (a replay, e.g. of a token another process redeemed):
   * the provider's replay answer, the grant revoked (and the refresh token itself destroyed). Consumed
   * later: a concurrent redemption that won, refused as by the consume.
   */
  async #refusedOwn(
    ctx: NonNullable<ReturnType<typeof currentRequest>>,
    id: string,
    key: string,
    takenAt: number,
  ) {
    const label = this.model === 'RefreshToken' ? 'refresh token' : 'authorization code';
    const row = await findPayload(this.#db, this.model, key);
    if (!row || row.revoked_at !== null) throw new errors.InvalidGrant(`${label} not found`);
    if (row.consumed_at === null || row.consumed_at >= takenAt) return;
    const { grantId } = JSON.parse(row.payload) as { grantId?: string };
    if (this.model === 'RefreshToken') {
      // oidc-provider's refresh_token grant on a consumed token (the token it found is its entity;
      // once its rotation began, the rotated one).
      const token = ctx.oidc.entities.RotatedRefreshToken ?? ctx.oidc.entities.RefreshToken;
      await Promise.all([token ? token.destroy() : this.destroy(id), revokeGrantAsProvider(ctx, grantId)]);
      throw new errors.InvalidGrant('refresh token already used');
    }
    // oidc-provider's consumeGrantSource on a consumed code.
    await revokeGrantAsProvider(ctx, grantId);
    throw new errors.InvalidGrant('authorization code already consumed');
  }

  async destroy(id: string): Promise<void> {
    try {
      await this.#destroy(id);
    } catch (error) {
      this.#hooks.revocationFailed?.(providerRevocationReason(), error);
      throw error;
    }
  }

  async #destroy(id: string): Promise<void> {
    if (REVOCABLE.has(this.model)) {
      const key = STRUCTURED.has(this.model) ? (structuredTokenId(id) ?? id) : id;
      const reason = providerRevocationReason();
      this.#revoked(await revokePayload(this.#db, this.model, storageId(key), this.#now(), reason), reason);
      if (KEPT_MODELS.has(this.model)) this.#lookup?.wrote([`${this.model} ${storageId(key)}`]);
      return;
    }
    await deletePayload(this.#db, this.model, storageId(id));
    // A session is also kept by its uid, which its id does not tell: everything kept goes.
    if (KEPT_MODELS.has(this.model))
      this.#lookup?.wrote(this.model === 'Session' ? undefined : [`${this.model} ${storageId(id)}`]);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    try {
      await this.#revokeByGrantId(grantId);
    } catch (error) {
      this.#hooks.revocationFailed?.(providerRevocationReason(), error);
      throw error;
    }
  }

  async #revokeByGrantId(grantId: string): Promise<void> {
    if (REVOCABLE.has(this.model)) {
      const reason = providerRevocationReason();
      this.#revoked(await revokePayloadsOfGrant(this.#db, this.model, grantId, this.#now(), reason), reason);
    } else {
      await deletePayloadsOfGrant(this.#db, this.model, grantId);
    }
    // The rows of a grant are not named one by one: everything kept goes.
    if (KEPT_MODELS.has(this.model)) this.#lookup?.wrote();
  }

  #revoked(rows: readonly TokenRow[], reason: string): void {
    if (rows.length > 0) this.#hooks.revoked?.(rows, reason);
  }

  #revive(row: StoredPayload | undefined, id?: string): AdapterPayload | undefined {
    if (!row || row.revoked_at !== null) return undefined;
    if (row.expires_at !== null && row.expires_at <= this.#now()) return undefined;
    const payload = payloadOf(row);
    if (id !== undefined) payload.jti = id;
    if (row.consumed_at !== null) payload.consumed = Math.floor(row.consumed_at / 1000);
    return payload;
  }
}

/** The payload parsed from a row, kept on the row (a property under a symbol of this module). */
const PARSED = Symbol('aa-oidc parsed payload');

/**
 * A row's payload as a new object of its own: the provider changes what it finds (the session's
 * authorizations, a grant's scopes), so each find gets a copy. A kept row (kept-rows.ts) is found
 * again and again: its payload is parsed once, on its first find, and copied member by member at
 * every find, which costs a fraction of parsing the text again. The row's `payload` text is what it
 * was read as; the parsed form is never handed out.
 */
function payloadOf(row: StoredPayload): AdapterPayload {
  const holder = row as StoredPayload & { [PARSED]?: unknown };
  let parsed = holder[PARSED];
  if (parsed === undefined) {
    parsed = JSON.parse(row.payload) as unknown;
    if (Object.isExtensible(row)) holder[PARSED] = parsed;
  }
  return copyOfJson(parsed) as AdapterPayload;
}

/** A deep copy of a value parsed from JSON (plain objects, arrays, strings, numbers, booleans, null). */
export function copyOfJson(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const array = new Array<unknown>(value.length);
    for (let index = 0; index < value.length; index += 1) array[index] = copyOfJson(value[index]);
    return array;
  }
  const object: Record<string, unknown> = {};
  // for…in: a parsed object's members are its own (about twice as fast as Object.keys here).
  for (const key in value) {
    const member = copyOfJson((value as Record<string, unknown>)[key]);
    // JSON.parse makes `__proto__` an own member: so does the copy (an assignment would set the prototype).
    if (key === '__proto__') {
      Object.defineProperty(object, key, {
        value: member,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      object[key] = member;
    }
  }
  return object;
}
