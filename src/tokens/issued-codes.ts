import { type Kysely, sql } from 'kysely';
import { type PurgeBounds, type PurgeRound, purgeRound } from '../db/bounded-purge.ts';
import { isPostgres } from '../db/dialect.ts';
import { precompiled } from '../db/precompiled.ts';
import type { AuditBus, PublishContext } from '../audit/bus.ts';
import type { Config } from '../config/load.ts';
import type { Database } from '../db/schema.ts';
import {
  inTransaction,
  plannedStatement,
  unbatchedWrites,
  type WriteBatch,
  type WriteDb,
} from '../db/write-batch.ts';
import type { Logger } from '../logging/logger.ts';
import { type SecretFormatter, sha256Hex } from '../logging/secrets.ts';
import type { Metrics } from '../metrics/registry.ts';
import { publishRevocations, revokeTokens, type RevokedToken } from './revocation.ts';
import {
  ADAPTER_COLUMN_TYPES,
  ADAPTER_COLUMNS,
  type AdapterRow,
  type AfterConsume,
  isAdapterRow,
  findStoredCode,
  EXPIRED_ROWS_PURGE,
  type PayloadRow,
  payloadRowsStatements,
  payloadRowWrites,
  type Redemption,
  redemptionWrite,
  rotateRefreshToken,
  storageId,
  type TokenModel,
  upsertPayloadRowsQuery,
  writePayloadRows,
} from './store.ts';

/**
 * The issued-code audit and authorization-code reuse detection: the only module that queries
 * `issued_code`. The provider's side (which request is a code exchange, holding back its token
 * rows) is src/oidc/code-exchange.ts.
 *
 * How the audit row and the tokens it produced are written in one transaction — oidc-provider
 * saves the access token and the refresh token of a code exchange in separate adapter calls:
 *
 * 1. Consuming the code (a conditional UPDATE: of N concurrent redemptions exactly one gets past
 *    it) inserts the `issued_code` row in the same transaction (`recordIssuedCode`), with no token
 *    ids yet.
 * 2. During a code exchange the adapter hands the token rows to the code exchange instead of
 *    writing them.
 * 3. When the provider has built its response, and before a byte of it is sent, one transaction
 *    sets the token ids on the `issued_code` row (an UPDATE, which also takes the row's lock) and
 *    writes the token rows, one statement for both (`storeExchangedTokens`). If the code was replayed meanwhile
 *    (`reuse_count > 0`), the tokens are written already revoked. If the transaction fails, the
 *    response becomes a `server_error`: no token is handed out that is not stored.
 *
 * At the token endpoint the three steps are one (`redeemCode`): the code exchange holds the code's
 * consume back too (src/oidc/code-exchange.ts) and writes it, the audit row with the token ids, and
 * the token rows in one transaction (on PostgreSQL one statement) once the response is built. A write
 * that fails leaves the code unused, so that the client's retry is no replay; a code consumed
 * meanwhile writes nothing, and the request is judged as a refused code. Steps 1 and 3 apart remain
 * for a consume outside such a request, and for a redemption refused after its consume (the code is
 * then used up by step 1 alone, as before).
 *
 * A replay (`invalid_grant` for a code with an `issued_code` row, or a consumed code) increments
 * `reuse_count` under the same row lock and revokes every code and token of the code's grant and
 * the token ids on the row, in one transaction (`judgeRefusedCode`). Whichever of the two
 * transactions comes second sees the other's work, so a token of a replayed code never stays
 * active. A code with no trace at all only increments `aa_oidc_code_reuse_audit_misses_total{client_id}`.
 *
 * Each code and token revoked for the reuse is told of (`token_revoked`) once, by the request whose
 * statement revoked it, however many redemptions are refused at once: the judgement tells those it
 * revoked (only live ones) and those the provider's own grant revocation revoked in the same request
 * (`revokedHere`, src/oidc/code-exchange.ts); tokens written revoked are told by their write.
 */
export interface IssuedCodeDependencies {
  db: Kysely<Database>;
  config: Pick<Config, 'tokens'>;
  audit: Pick<AuditBus, 'publish'>;
  metrics: Pick<Metrics, 'codeReuseAuditMisses'>;
  logger: Pick<Logger, 'error' | 'warn'>;
  /** With masks enabled, `code_reuse_detected` names the code by head/tail fragments too, in the log; off without. */
  secrets?: Pick<SecretFormatter, 'masksEnabled' | 'maskSecret'>;
  now?: () => number;
  /** Where the held-back rows are written (src/db/write-batch.ts); at once, each on its own, by default. */
  writes?: WriteBatch;
}

export interface IssuedCodes {
  /**
   * Step 1: consumes the code (`value`, stored under `id`) and records it, atomically; false when
   * it was consumed or revoked already.
   */
  consumeCode(value: string, id: string, at: number): Promise<boolean>;
  /**
   * Step 3: the token rows and their ids on the audit row, in one transaction; true when the code was
   * replayed meanwhile (the tokens were written revoked). Throws on failure.
   */
  storeExchangedTokens(code: string, rows: readonly PayloadRow[]): Promise<boolean>;
  /**
   * Steps 1 and 3 at once, for an exchange that held its code's consume back until its response was
   * built: the code consumed, its audit row (with the token ids) inserted and the token rows written,
   * in one transaction (on PostgreSQL one statement); false, and nothing written, when the code was
   * consumed or revoked meanwhile. Throws on failure, and the code then stays unused: the client's
   * retry is no replay.
   */
  redeemCode(code: string, id: string, at: number, rows: readonly PayloadRow[]): Promise<boolean>;
  /**
   * A refused code: a replay of a redeemed one, a never-issued one, or neither (PKCE, redirect…).
   * `revokedHere` are the codes and tokens the provider itself revoked in this request when it found
   * the code consumed (its grant revocation): told of with those the judgement revokes, each once.
   */
  judgeRefusedCode(
    code: string,
    callerClientId: string,
    revokedHere?: readonly RevokedToken[],
  ): Promise<void>;
  /**
   * Rows a request that redeems no code held back, in one statement: an authorization's code and
   * session, a refresh's access token when the refresh token is not rotated. Throws on failure.
   */
  writeRows(rows: readonly PayloadRow[]): Promise<void>;
  /**
   * A refresh token's rotation: the presented token consumed and the response's rows written in one
   * transaction; false, and nothing written, when the token was consumed or revoked meanwhile. Throws
   * on failure (the presented token then stays unused).
   */
  rotateRefreshToken(rotation: Redemption): Promise<boolean>;
}

export function createIssuedCodes(deps: IssuedCodeDependencies): IssuedCodes {
  const { db, config, audit, metrics, logger } = deps;
  const now = deps.now ?? Date.now;
  const writes = deps.writes ?? unbatchedWrites(db);

  const postgres = isPostgres(db);
  const issuedCodeTtlMs = config.tokens.refreshTokenTtl * 1000;

  const redeemCode: IssuedCodes['redeemCode'] = (code, id, at, rows) =>
    recordedRedemption(
      writes,
      { id, at, rows },
      sha256Hex(code),
      at,
      at + issuedCodeTtlMs,
      rows.find((row) => row.model === 'AccessToken')?.id ?? null,
      rows.find((row) => row.model === 'RefreshToken')?.id ?? null,
    );

  // On PostgreSQL the codes redeemed in one turn are consumed and recorded by one statement, atomic by
  // itself (a single code too: the statement is prepared once, where building the query costs CPU).
  const consumeCodes =
    postgres &&
    writes.merging<CodeConsume, boolean>({
      together: (connection, items) => consumeCodesTogether(connection, items, issuedCodeTtlMs),
      alone: async (connection, item) =>
        (await consumeCodesTogether(connection, [item], issuedCodeTtlMs))[0]!,
    });

  // On SQLite, a held redemption with no rows.
  const consumeCode: IssuedCodes['consumeCode'] = (value, id, at) =>
    consumeCodes ? consumeCodes({ value, id, at }) : redeemCode(value, id, at, []);

  const storeExchangedTokens: IssuedCodes['storeExchangedTokens'] = async (code, rows) => {
    const codeHash = sha256Hex(code);
    const accessToken = rows.find((row) => row.model === 'AccessToken');
    const refreshToken = rows.find((row) => row.model === 'RefreshToken');
    const at = now();
    const replayed = postgres
      ? rows.every(isAdapterRow)
        ? await exchangedTokens({ codeHash, rows, at })
        : await storeExchangedTokensAtOnce(db, codeHash, accessToken?.id, refreshToken?.id, rows, at)
      : await writes.run(
          (batch) =>
            inTransaction(batch, async (trx) => {
              const audited = await trx
                .updateTable('issued_code')
                .set({ access_token_id: accessToken?.id ?? null, refresh_token_id: refreshToken?.id ?? null })
                .where('code_hash', '=', codeHash)
                .returning(['reuse_count'])
                .executeTakeFirst();
              const replayed = (audited?.reuse_count ?? 0) > 0;
              await writePayloadRows(
                trx,
                replayed
                  ? rows.map((row) => ({ ...row, revoked_at: at, revoked_reason: 'code_reuse' }))
                  : rows,
              );
              return replayed;
            }),
          // The same as data: whether the code was replayed is read, and the rows revoked, in SQL.
          (connection) => ({
            statements: [
              plannedStatement(
                setExchangedTokenIds.compile(
                  connection,
                  accessToken?.id ?? null,
                  refreshToken?.id ?? null,
                  codeHash,
                ),
              ),
              plannedStatement(replayedCode.compile(connection, codeHash)),
              ...payloadRowsStatements(connection, rows).map((query) => plannedStatement(query)),
              ...rows.map((row) =>
                plannedStatement(revokeIfReplayed.compile(connection, at, row.model, row.id, codeHash)),
              ),
            ],
            result: (changes) => changes[1]! > 0,
          }),
        );
    if (replayed) {
      publishRevocations(
        audit,
        rows.map((row) => ({
          model: row.model as TokenModel,
          id: row.id,
          clientId: row.client_id ?? null,
          userId: row.user_id ?? null,
          grantId: row.grant_id ?? null,
          format: row.format ?? null,
        })),
        'code_reuse',
      );
    }
    return replayed;
  };

  const judgeRefusedCode: IssuedCodes['judgeRefusedCode'] = async (
    code,
    callerClientId,
    revokedHere = [],
  ) => {
    const codeHash = sha256Hex(code);
    const at = now();
    const publishedIn: PublishContext | undefined = deps.secrets?.masksEnabled
      ? { masked: { code_masked: deps.secrets.maskSecret(code) } }
      : undefined;
    let outcome:
      | {
          kind: 'reuse';
          row: {
            client_id: string;
            access_token_id: string | null;
            refresh_token_id: string | null;
            reuse_count: number;
          };
          revoked: RevokedToken[];
        }
      | { kind: 'miss' }
      | { kind: 'not_redeemed' };
    try {
      outcome = await db.transaction().execute(async (trx) => {
        let row = await trx
          .updateTable('issued_code')
          .set((eb) => ({ reuse_count: eb('reuse_count', '+', 1), last_reuse_at: at }))
          .where('code_hash', '=', codeHash)
          .returningAll()
          .executeTakeFirst();
        if (!row) {
          const stored = await findStoredCode(trx, storageId(code));
          if (!stored) return { kind: 'miss' as const };
          if (stored.consumed_at === null) return { kind: 'not_redeemed' as const };
          // Consumed before this audit existed (or its row was lost): record the reuse now.
          row = await trx
            .insertInto('issued_code')
            .values({
              code_hash: codeHash,
              client_id: stored.client_id ?? callerClientId,
              user_id: stored.user_id,
              grant_id: stored.grant_id,
              access_token_id: null,
              refresh_token_id: null,
              reuse_count: 1,
              last_reuse_at: at,
              created_at: at,
              expires_at: at + config.tokens.refreshTokenTtl * 1000,
            })
            .returningAll()
            .executeTakeFirstOrThrow();
        }
        const ids = [row.access_token_id, row.refresh_token_id].filter((id): id is string => id !== null);
        // Only the rows still live: those revoked already (by the provider in this request, by a
        // concurrent replay, by the winner's write) are told by whoever revoked them.
        const revoked = row.grant_id
          ? await revokeTokens(trx, { grantId: row.grant_id, ids }, 'code_reuse', at)
          : [];
        return { kind: 'reuse' as const, row, revoked };
      });
    } catch (error) {
      logger.error({ err: error, code_hash: codeHash }, 'authorization-code reuse could not be handled');
      // The revocation failed, the reuse stands: counted on the row in a statement of its own, so that
      // the row is kept past the purge and listed, and a winner's tokens stored after it are revoked.
      const columns = ['client_id', 'access_token_id', 'refresh_token_id', 'reuse_count'] as const;
      const row = await db
        .updateTable('issued_code')
        .set((eb) => ({ reuse_count: eb('reuse_count', '+', 1), last_reuse_at: at }))
        .where('code_hash', '=', codeHash)
        .returning(columns)
        .executeTakeFirst()
        .catch(() =>
          db
            .selectFrom('issued_code')
            .select(columns)
            .where('code_hash', '=', codeHash)
            .executeTakeFirst()
            .catch(() => undefined),
        );
      if (row) {
        audit.publish(
          {
            kind: 'code_reuse_detected',
            client_id: row.client_id,
            code_hash: codeHash,
            access_token_id: row.access_token_id,
            refresh_token_id: row.refresh_token_id,
            reuse_count: row.reuse_count,
            revoke_succeeded: false,
          },
          publishedIn,
        );
      }
      publishRevocations(audit, revokedHere, 'code_reuse');
      return;
    }
    switch (outcome.kind) {
      case 'miss':
        metrics.codeReuseAuditMisses.inc({ client_id: callerClientId });
        publishRevocations(audit, revokedHere, 'code_reuse');
        return;
      case 'not_redeemed':
        publishRevocations(audit, revokedHere, 'code_reuse');
        return;
      case 'reuse':
        audit.publish(
          {
            kind: 'code_reuse_detected',
            client_id: outcome.row.client_id,
            code_hash: codeHash,
            access_token_id: outcome.row.access_token_id,
            refresh_token_id: outcome.row.refresh_token_id,
            reuse_count: outcome.row.reuse_count,
            revoke_succeeded: true,
          },
          publishedIn,
        );
        // Apart by construction: the provider's revocation was done before the judgement's began.
        publishRevocations(audit, [...revokedHere, ...outcome.revoked], 'code_reuse');
        return;
    }
  };

  const writeRows: IssuedCodes['writeRows'] = payloadRowWrites(writes);

  // PostgreSQL: the code exchanges of one turn store their tokens in one statement.
  const exchangedTokens = writes.merging<ExchangedTokens, boolean>({
    together: storeExchangedTokensTogether,
    alone: async (connection, item) => (await storeExchangedTokensTogether(connection, [item]))[0]!,
  });

  const rotate: IssuedCodes['rotateRefreshToken'] = (rotation) => rotateRefreshToken(writes, rotation);

  return {
    consumeCode,
    storeExchangedTokens,
    redeemCode,
    judgeRefusedCode,
    writeRows,
    rotateRefreshToken: rotate,
  };
}

/**
 * A consumed code's audit row, from the code's row as the consume left it: without token ids for
 * step 1, with them for a held redemption (`redeemCode`), which writes the tokens with it.
 */
const recordIssuedCode: AfterConsume<
  [
    codeHash: string,
    at: number,
    expiresAt: number,
    accessTokenId: string | null,
    refreshTokenId: string | null,
  ],
  'issued_code'
> = (db, codeHash, at, expiresAt, accessTokenId, refreshTokenId) =>
  db
    .insertInto('issued_code')
    .columns([
      'code_hash',
      'client_id',
      'user_id',
      'grant_id',
      'access_token_id',
      'refresh_token_id',
      'reuse_count',
      'last_reuse_at',
      'created_at',
      'expires_at',
    ])
    // `where true`: SQLite would read the `on conflict` that follows as a join's `on`.
    .expression(
      sql`select ${codeHash}, coalesce("client_id", ''), "user_id", "grant_id", ${accessTokenId}, ${refreshTokenId},
        0, null, ${at}, ${expiresAt}
        from "consumed" where true`,
    )
    .onConflict((conflict) => conflict.column('code_hash').doNothing());

/** A code consumed and its audit row inserted, with the rows of its token response (steps 1 and 3). */
const recordedRedemption = redemptionWrite('AuthorizationCode', { statement: recordIssuedCode, arity: 5 });

/** SQLite, step 3's plan: the token ids on the audit row. */
const setExchangedTokenIds = precompiled(
  (db: WriteDb, accessTokenId: string | null, refreshTokenId: string | null, codeHash: string) =>
    db
      .updateTable('issued_code')
      .set({ access_token_id: accessTokenId, refresh_token_id: refreshTokenId })
      .where('code_hash', '=', codeHash),
);

/** The issued-code row of `codeHash` when that code has been replayed (presented again). */
function replayedRow(db: WriteDb, codeHash: string) {
  return db
    .selectFrom('issued_code')
    .select('code_hash')
    .where('code_hash', '=', codeHash)
    .where('reuse_count', '>', 0);
}

/** SQLite, step 3's plan: a row when the code was replayed meanwhile. */
const replayedCode = precompiled((db: WriteDb, codeHash: string) => replayedRow(db, codeHash));

/** SQLite, step 3's plan: a token row just written, revoked when its code was replayed meanwhile. */
const revokeIfReplayed = precompiled((db: WriteDb, at: number, model: string, id: string, codeHash: string) =>
  db
    .updateTable('oidc_payload')
    .set({ revoked_at: at, revoked_reason: 'code_reuse' })
    .where('model', '=', model)
    .where('id', '=', id)
    .where((eb) => eb.exists(replayedRow(db, codeHash))),
);

/** A code one request redeems: its value, its storage id, and when. */
interface CodeConsume {
  value: string;
  id: string;
  at: number;
}

/**
 * Step 1 on PostgreSQL: the codes of several requests consumed (each under the conditions of
 * `consumeLiveQuery`) and their audit rows inserted, in one statement whose text does not depend on
 * how many there are.
 *
 * Each code's model comes with it (an array of `AuthorizationCode`), not as a constant: with the
 * constant, a plan made while the table's statistics were missing or stale (a new database, or
 * autovacuum off) found every code of the model by a bitmap scan and compared each with the ones
 * asked for (PostgreSQL keeps a generic plan for the connection's life; measured with autovacuum
 * off, 930 buffers per statement for six codes, 180 with the model from the array). Matched on the
 * whole primary key, each code is one lookup by it whatever the statistics say (exported for the
 * test of that plan).
 */
export const consumeCodeArrays = precompiled(
  (
    db: WriteDb,
    models: readonly string[],
    ids: readonly string[],
    codeHashes: readonly string[],
    ats: readonly number[],
    expiries: readonly number[],
  ) => ({
    compile: () =>
      sql<{ id: string }>`with "consumed" as (
          update "oidc_payload" as p set "consumed_at" = c.at
          from unnest(${models}::text[], ${ids}::text[], ${codeHashes}::text[], ${ats}::int8[],
            ${expiries}::int8[]) as c(model, id, code_hash, at, expires_at)
          where p."model" = c.model and p."id" = c.id
            and p."consumed_at" is null and p."revoked_at" is null
          returning p."id", p."client_id", p."user_id", p."grant_id", c.code_hash, c.at, c.expires_at),
        "recorded" as (
          insert into "issued_code" ("code_hash", "client_id", "user_id", "grant_id", "access_token_id",
            "refresh_token_id", "reuse_count", "last_reuse_at", "created_at", "expires_at")
          select code_hash, coalesce(client_id, ''), user_id, grant_id, null, null, 0, null, at, expires_at
          from "consumed"
          on conflict ("code_hash") do nothing)
        select "id" from "consumed"`.compile(db),
  }),
);

/**
 * The codes of one turn, consumed and recorded together. A code presented twice in the turn (two
 * concurrent redemptions) is consumed by the first that presented it, as one after the other would;
 * the later one finds it consumed. Rows go in id order, so that two such statements that touch the
 * same rows take their locks in the same order.
 */
async function consumeCodesTogether(
  db: WriteDb,
  items: readonly CodeConsume[],
  issuedCodeTtlMs: number,
): Promise<boolean[]> {
  const first = new Map<string, number>();
  items.forEach((item, index) => {
    if (!first.has(item.id)) first.set(item.id, index);
  });
  const unique = [...first.keys()].sort().map((id) => items[first.get(id)!]!);
  const consumed = new Set(
    (
      await consumeCodeArrays.rows(
        db,
        unique.map(() => 'AuthorizationCode'),
        unique.map((item) => item.id),
        unique.map((item) => sha256Hex(item.value)),
        unique.map((item) => item.at),
        unique.map((item) => item.at + issuedCodeTtlMs),
      )
    ).map((row) => row.id),
  );
  return items.map((item, index) => first.get(item.id) === index && consumed.has(item.id));
}

/** The token rows of one code exchange (adapter rows), held back until its response is built. */
interface ExchangedTokens {
  codeHash: string;
  rows: readonly AdapterRow[];
  at: number;
}

/**
 * Step 3 on PostgreSQL for the exchanges of several requests, in one statement atomic by itself (as
 * `storeExchangedTokensAtOnce`): the UPDATE of each audit row, and each exchange's token rows written
 * revoked when its code was replayed meanwhile. The text does not depend on how many there are.
 */
const storeExchangedTokenArrays = precompiled(
  (
    db: WriteDb,
    codeHashes: readonly string[],
    accessTokenIds: ReadonlyArray<string | null>,
    refreshTokenIds: ReadonlyArray<string | null>,
    rowCodeHashes: readonly string[],
    rowAts: readonly number[],
    ...columns: Array<ReadonlyArray<AdapterRow[keyof AdapterRow]>>
  ) => ({
    compile: () => {
      const row = (column: string) => sql.ref(`r.${column}`);
      const replayed = sql`a.reuse_count > 0`;
      return sql<{ code_hash: string; reuse_count: number }>`with "audited" as (
          update "issued_code" as i
          set "access_token_id" = c.access_token_id, "refresh_token_id" = c.refresh_token_id
          from unnest(${codeHashes}::text[], ${accessTokenIds}::text[], ${refreshTokenIds}::text[])
            as c(code_hash, access_token_id, refresh_token_id)
          where i."code_hash" = c.code_hash
          returning i."code_hash", i."reuse_count"),
        "written" as (
          insert into "oidc_payload" (${sql.join(ADAPTER_COLUMNS.map((column) => sql.ref(column)))},
            "revoked_at", "revoked_reason")
          select ${sql.join(ADAPTER_COLUMNS.map(row))},
            case when ${replayed} then r.at end, case when ${replayed} then 'code_reuse' end
          from unnest(${sql.join(
            ADAPTER_COLUMNS.map(
              (column, index) => sql`${columns[index]}::${sql.raw(ADAPTER_COLUMN_TYPES[column])}[]`,
            ),
          )}, ${rowCodeHashes}::text[], ${rowAts}::int8[])
            as r(${sql.join(ADAPTER_COLUMNS.map((column) => sql.ref(column)))}, code_hash, at)
          left join "audited" as a on a.code_hash = r.code_hash
          on conflict ("model", "id") do update set ${sql.join(
            [
              ...ADAPTER_COLUMNS.filter((column) => column !== 'model' && column !== 'id'),
              'revoked_at',
              'revoked_reason',
            ].map((column) => sql`${sql.ref(column)} = ${sql.ref(`excluded.${column}`)}`),
          )}
          returning "id")
        select "code_hash", "reuse_count" from "audited"`.compile(db);
    },
  }),
  5 + ADAPTER_COLUMNS.length,
);

/**
 * The exchanges of one turn, stored together; each is told whether its code was replayed. A code's
 * audit row is updated once per statement: two exchanges of one code (which consuming it rules out)
 * fail the statement, and each is then stored alone.
 */
async function storeExchangedTokensTogether(
  db: WriteDb,
  items: readonly ExchangedTokens[],
): Promise<boolean[]> {
  const codes = new Set(items.map((item) => item.codeHash));
  if (codes.size !== items.length) throw new Error('one code exchanged twice in a turn');
  const sorted = [...items].sort((a, b) => (a.codeHash < b.codeHash ? -1 : a.codeHash > b.codeHash ? 1 : 0));
  const rows = sorted.flatMap((item) => item.rows.map((row) => ({ row, item })));
  const tokenId = (item: ExchangedTokens, model: string) =>
    item.rows.find((row) => row.model === model)?.id ?? null;
  const audited = await storeExchangedTokenArrays.rows(
    db,
    sorted.map((item) => item.codeHash),
    sorted.map((item) => tokenId(item, 'AccessToken')),
    sorted.map((item) => tokenId(item, 'RefreshToken')),
    rows.map(({ item }) => item.codeHash),
    rows.map(({ item }) => item.at),
    ...ADAPTER_COLUMNS.map((column) => rows.map(({ row }) => row[column])),
  );
  const replayed = new Set(audited.filter((row) => row.reuse_count > 0).map((row) => row.code_hash));
  return items.map((item) => replayed.has(item.codeHash));
}

/**
 * Step 3 on PostgreSQL in one statement, atomic by itself: the UPDATE of the audit row (which takes
 * its lock, so that a replay's judgement comes wholly before or after) and the token rows, written
 * revoked when the code was replayed meanwhile. True when it was.
 */
async function storeExchangedTokensAtOnce(
  db: Kysely<Database>,
  codeHash: string,
  accessTokenId: string | undefined,
  refreshTokenId: string | undefined,
  rows: readonly PayloadRow[],
  at: number,
): Promise<boolean> {
  const replayed = sql`exists (select 1 from audited where reuse_count > 0)`;
  const stored = await db
    .with('audited', (qc) =>
      qc
        .updateTable('issued_code')
        .set({ access_token_id: accessTokenId ?? null, refresh_token_id: refreshTokenId ?? null })
        .where('code_hash', '=', codeHash)
        .returning('reuse_count'),
    )
    .with('written', (qc) =>
      upsertPayloadRowsQuery(
        qc,
        rows.map((row) => ({
          ...row,
          revoked_at: sql<number | null>`case when ${replayed} then ${at}::bigint end`,
          revoked_reason: sql<string | null>`case when ${replayed} then 'code_reuse' end`,
        })),
      ).returning('id'),
    )
    .selectFrom('audited')
    .select('reuse_count')
    .executeTakeFirst();
  return (stored?.reuse_count ?? 0) > 0;
}

/**
 * Deletes issued-code rows that were never reused once their time is over, the earliest first, one
 * round (`bounds`); `more` when some may remain. Reused rows stay: by the index of reuse count and
 * expiry (migration 0084), the statement reads only unreused rows, however many reused ones have
 * accumulated before them.
 */
export function purgeIssuedCodes(
  db: Kysely<Database>,
  now = Date.now(),
  signal?: AbortSignal,
  bounds: PurgeBounds = EXPIRED_ROWS_PURGE,
): Promise<PurgeRound> {
  const deleteBatch = async (rows: number) => {
    const result = await db
      .deleteFrom('issued_code')
      .where('code_hash', 'in', (eb) =>
        eb
          .selectFrom('issued_code')
          .select('code_hash')
          .where('reuse_count', '=', 0)
          .where('expires_at', '<=', now)
          .orderBy('expires_at')
          .limit(rows),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  };
  return purgeRound(deleteBatch, bounds, signal);
}

/** A code presented again (an issued-code audit row with `reuse_count > 0`), for the admin UI. */
export interface CodeReuseAudit {
  codeHash: string;
  clientId: string;
  userId: number | null;
  grantId: string | null;
  accessTokenId: string | null;
  refreshTokenId: string | null;
  reuseCount: number;
  lastReuseAt: number | null;
  createdAt: number;
}

export interface CodeReuseFilter {
  clientId?: string;
  userId?: number;
  /** Last reuse at or after / before. */
  since?: number;
  until?: number;
  offset?: number;
  limit?: number;
}

/** Reused codes, most recent reuse first. */
export async function listCodeReuse(
  db: Kysely<Database>,
  filter: CodeReuseFilter = {},
): Promise<CodeReuseAudit[]> {
  let query = db.selectFrom('issued_code').selectAll().where('reuse_count', '>', 0);
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (filter.userId !== undefined) query = query.where('user_id', '=', String(filter.userId));
  if (filter.since !== undefined) query = query.where('last_reuse_at', '>=', filter.since);
  if (filter.until !== undefined) query = query.where('last_reuse_at', '<', filter.until);
  const rows = await query
    .orderBy('last_reuse_at', 'desc')
    .orderBy('code_hash')
    .offset(Math.max(0, filter.offset ?? 0))
    .limit(Math.min(Math.max(1, filter.limit ?? 50), 1000))
    .execute();
  return rows.map((row) => ({
    codeHash: row.code_hash,
    clientId: row.client_id,
    userId: row.user_id !== null && /^\d+$/.test(row.user_id) ? Number(row.user_id) : null,
    grantId: row.grant_id,
    accessTokenId: row.access_token_id,
    refreshTokenId: row.refresh_token_id,
    reuseCount: Number(row.reuse_count),
    lastReuseAt: row.last_reuse_at === null ? null : Number(row.last_reuse_at),
    createdAt: Number(row.created_at),
  }));
}
