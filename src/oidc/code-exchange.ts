import type Koa from 'koa';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { noteDatabaseFault, noteDatabaseUnavailable } from '../http/unavailable.ts';
import type { Logger } from '../logging/logger.ts';
import type { IssuedCodes } from '../tokens/issued-codes.ts';
import { revokedToken, type RevokedToken } from '../tokens/revocation.ts';
import type { PayloadRow } from '../tokens/store.ts';
import type { AdapterWriteHooks, HeldConsume } from './adapter.ts';
import { type KeptRows, keptKeysWritten } from './kept-rows.ts';
import type { OwnCodes } from './own-codes.ts';
import { currentRequest } from './provider-internals.ts';
import { RequestMemo } from './request-memo.ts';

/** What the log says failed when a replayed code's grant could not be revoked (`noteDatabaseFault`). */
const REUSE_REVOCATION_FAILED = 'the grant of a replayed authorization code could not be revoked';

/**
 * The code exchange around oidc-provider's token endpoint, for the issued-code audit and code-reuse
 * detection (src/tokens/issued-codes.ts): the adapter hooks hold back the token rows of an
 * `authorization_code` exchange and record the consumed code; the middleware (installed with
 * `provider.use()`) writes the held rows with their audit row once the response is built, or judges
 * a refused code.
 *
 * A refresh token's rotation is held back the same way, the consume of the presented token with
 * it: the consume and the two rows (the new refresh token and the access token) are written in one
 * transaction (on PostgreSQL one statement) once the response is built, before a byte of it is sent.
 * If that write fails the response becomes a `server_error` and the presented token stays unused, so
 * that the client's retry with the only refresh token it has is no replay; if the token was consumed
 * or revoked meanwhile (a concurrent or another process's redemption) nothing is written and the
 * response becomes the provider's `invalid_grant`, a replay revoking the grant as the adapter's own
 * consume would have.
 *
 * So is an authorization request's writes: the code it issues and the session it saves again (the
 * provider renews a session's expiry on every request; the adapter skips a save that changes nothing,
 * its expiry in the same second) go in one statement once the response is
 * built; if that fails the response becomes an error without the code. Once written, what this
 * process keeps of the session goes (`KeptRows.wrote`), as after any write of the adapter's: a request
 * in flight that has read the change log already would otherwise take the session as it was before,
 * from memory or from a load that began before the write (`KeptRows.share`), until its next read.
 *
 * Once written, the codes and refresh tokens among the held rows are kept in memory until their
 * redemption (own-codes.ts), so that it does not read them back; tokens written revoked are not.
 *
 * What tells others of a held token (its `token_issued` event and count, token-events.ts) waits for
 * its write too (`onceTokensStored`): a token whose write failed was never issued. What tells of the
 * held consume (a rotated refresh token's `token_revoked`) waits for the consume's write
 * (`onceConsumed`): with the tokens, or alone when the provider refused the request after it.
 *
 * The codes and tokens the provider revokes itself when it finds the presented code consumed (its grant
 * revocation, through the adapter) are told of (`token_revoked`) by the judgement of the same request,
 * with those its own revocation takes: each by the one request whose UPDATE revoked it, however many
 * redemptions of the code were refused at once. When the provider's revocation fails (a database
 * fault), the judgement still runs (it revokes what it can, and counts the reuse on the code's row
 * either way) and the response is the 503 "try again" of an unavailable database, never a 500: the
 * client sent a used code, and its next try revokes the grant again.
 */
export interface CodeExchangeHooks {
  /** Handed to the `KyselyAdapter`s of the provider. */
  adapterHooks: AdapterWriteHooks;
  /** Installed with `provider.use()`. */
  middleware: Koa.Middleware;
  /**
   * When the current request holds back its tokens (a code exchange, a refresh): what runs once they
   * are stored (never, if their write fails or the response is not a success), for the caller to add
   * to. Otherwise undefined: its tokens are stored by the time the provider tells of them.
   */
  onceTokensStored(): Array<() => void> | undefined;
  /**
   * When the current request holds back the consume of the code or refresh token it presented: what
   * runs once that consume is written, with the tokens or alone (never, if it is not written: a write
   * that failed, or a code or token consumed or revoked meanwhile, told of by what did that).
   */
  onceConsumed(): Array<() => void> | undefined;
}

interface CodeExchange {
  rows: PayloadRow[];
  /** The consume of the presented code or refresh token, written with `rows`. */
  held: HeldConsume | undefined;
  /** This request consumed the code (a later refusal, e.g. a deactivated user, is no replay). */
  consumedHere: boolean;
  /** What waits for the held tokens to be stored (`onceTokensStored`). */
  onceStored: Array<() => void> | undefined;
  /** What waits for the held consume to be written (`onceConsumed`). */
  onceConsumed: Array<() => void> | undefined;
}

const DEFERRED_MODELS = new Set(['AccessToken', 'RefreshToken']);
/** What an authorization request writes: its code and, once it is done, its session. */
const AUTHORIZATION_MODELS = new Set(['AuthorizationCode', 'Session']);

function isCodeExchange(ctx: Pick<KoaContextWithOIDC, 'oidc'> | undefined): boolean {
  return ctx?.oidc?.route === 'token' && ctx.oidc.params?.grant_type === 'authorization_code';
}

function isRefresh(ctx: Pick<KoaContextWithOIDC, 'oidc'> | undefined): boolean {
  return ctx?.oidc?.route === 'token' && ctx.oidc.params?.grant_type === 'refresh_token';
}

function isAuthorization(ctx: Pick<KoaContextWithOIDC, 'oidc'> | undefined): boolean {
  return ctx?.oidc?.route === 'authorization';
}

/** Whether this request holds back `model`'s rows until its response is built. */
function holdsBack(ctx: Pick<KoaContextWithOIDC, 'oidc'> | undefined, model: string): boolean {
  if (DEFERRED_MODELS.has(model)) return isCodeExchange(ctx) || isRefresh(ctx);
  return AUTHORIZATION_MODELS.has(model) && isAuthorization(ctx);
}

export function codeExchangeHooks(
  issuedCodes: IssuedCodes,
  logger: Pick<Logger, 'error'>,
  ownCodes?: OwnCodes,
  keptRows?: Pick<KeptRows, 'wrote'>,
  now: () => number = Date.now,
): CodeExchangeHooks {
  const exchanges = new RequestMemo<'exchange', CodeExchange>();
  /**
   * What the provider revoked in this request for a replayed code, to be told by its judgement. Apart
   * from the exchange, which is forgotten once the provider's route is done: a held consume refused
   * once written revokes after that (the adapter's `#refusedOwn`).
   */
  const revokedForReuse = new RequestMemo<'code_reuse', RevokedToken[]>();
  /** The error of the provider's revocation for a replayed code that failed in this request. */
  const failedReuseRevocation = new RequestMemo<'code_reuse', { error: unknown }>();

  const adapterHooks: AdapterWriteHooks = {
    deferWrite(row) {
      if (!DEFERRED_MODELS.has(row.model) && !AUTHORIZATION_MODELS.has(row.model)) return false;
      const ctx = currentRequest();
      const exchange = exchanges.peek(ctx, 'exchange');
      if (!exchange || !holdsBack(ctx, row.model)) return false;
      exchange.rows.push(row);
      return true;
    },
    holdConsume(consume) {
      const ctx = currentRequest();
      const exchange = exchanges.peek(ctx, 'exchange');
      if (!exchange) return false;
      if (consume.model === 'RefreshToken' ? !isRefresh(ctx) : !isCodeExchange(ctx)) return false;
      exchange.held = consume;
      // A refusal after this point (a deactivated user) is no replay: the code stays unused.
      exchange.consumedHere = true;
      return true;
    },
    async consumeCode(code) {
      const consumed = await issuedCodes.consumeCode(code.value, code.id, code.at);
      const exchange = exchanges.peek(currentRequest(), 'exchange');
      if (consumed && exchange) exchange.consumedHere = true;
      return consumed;
    },
    revoked(rows, reason) {
      // Other reasons (the revocation endpoint, logout, a replayed refresh token) are not told here.
      if (reason !== 'code_reuse') return;
      const ctx = currentRequest();
      if (!ctx) return;
      revokedForReuse.get(ctx, 'code_reuse', () => []).push(...rows.map(revokedToken));
    },
    revocationFailed(reason, error) {
      if (reason !== 'code_reuse') return;
      const ctx = currentRequest();
      if (!ctx || failedReuseRevocation.peek(ctx, 'code_reuse')) return;
      failedReuseRevocation.set(ctx, 'code_reuse', { error });
    },
  };

  /**
   * Writes a token response's held rows before a byte of it is sent (`write` answers whether they
   * were written live), then keeps its refresh token for its redemption and tells what waited for
   * them (`onceTokensStored`); if the write fails, the response becomes a `server_error` (or, when
   * the database is down or busy, the outer layer's 503) and nothing is told.
   */
  async function storeTokens(
    ctx: Koa.Context,
    exchange: CodeExchange,
    write: () => Promise<boolean>,
    what: string,
  ): Promise<void> {
    let live: boolean;
    try {
      live = await write();
    } catch (error) {
      if (error instanceof errors.OIDCProviderError) {
        // Refused once written (a refresh token consumed meanwhile): the provider's answer to it.
        ctx.status = error.statusCode;
        ctx.body = { error: error.error, error_description: error.error_description };
        const provided = ctx as unknown as KoaContextWithOIDC;
        provided.oidc?.provider.emit('grant.error', provided, error);
        return;
      }
      const failedRevocation = failedReuseRevocation.peek(ctx, 'code_reuse');
      if (failedRevocation) {
        // A code consumed meanwhile (a replay) whose grant could not be revoked: judged below.
        noteDatabaseFault(ctx, failedRevocation.error, REUSE_REVOCATION_FAILED);
      } else if (!noteDatabaseUnavailable(ctx, error)) {
        logger.error({ err: error }, `the tokens of a ${what} could not be stored`);
        ctx.status = 500;
        ctx.body = { error: 'server_error', error_description: 'the tokens could not be issued' };
      }
      return;
    }
    if (live) ownCodes?.wrote(exchange.rows, now());
    // Nothing kept changed (no `KeptRows.wrote`): the consume is a code's or a refresh token's, never
    // kept, and the access token a new row, whose id no request could look up before this response, so
    // none is kept or loading.
    if (exchange.onceConsumed) for (const tell of exchange.onceConsumed) tell();
    if (exchange.onceStored) for (const tell of exchange.onceStored) tell();
  }

  function onceTokensStored(): Array<() => void> | undefined {
    const ctx = currentRequest();
    const exchange = exchanges.peek(ctx, 'exchange');
    if (!exchange || !holdsBack(ctx, 'AccessToken')) return undefined;
    return (exchange.onceStored ??= []);
  }

  function onceConsumed(): Array<() => void> | undefined {
    const exchange = exchanges.peek(currentRequest(), 'exchange');
    if (!exchange?.held) return undefined;
    return (exchange.onceConsumed ??= []);
  }

  const middleware: Koa.Middleware = async (ctx, next) => {
    if (ctx.method !== 'POST' && ctx.method !== 'GET') return next();
    const exchange: CodeExchange = {
      rows: [],
      held: undefined,
      consumedHere: false,
      onceStored: undefined,
      onceConsumed: undefined,
    };
    exchanges.set(ctx, 'exchange', exchange);
    try {
      await next();
    } finally {
      exchanges.forget(ctx);
    }
    const provided = ctx as unknown as KoaContextWithOIDC;
    if (provided.oidc && isAuthorization(provided) && exchange.rows.length > 0) {
      try {
        await issuedCodes.writeRows(exchange.rows);
        ownCodes?.wrote(exchange.rows, now());
        const written = exchange.rows.flatMap(keptKeysWritten);
        if (written.length > 0) keptRows?.wrote(written);
      } catch (error) {
        ctx.remove('Location');
        // A database that is down or busy: answered 503 "try again" by the outer layer.
        if (noteDatabaseUnavailable(ctx, error)) return;
        logger.error({ err: error }, 'the code or session of an authorization could not be stored');
        ctx.status = 500;
        ctx.type = 'text/plain';
        ctx.body = 'The sign-in could not be completed. Please try again.';
      }
      return;
    }
    if (exchange.held && ctx.status >= 400 && ctx.status < 500) {
      // Refused after the consume (a user who lost access): the code or token is used up, as when the
      // consume was written at once. A write that failed (5xx) leaves it for the client's retry.
      const consumed = await exchange.held.consumeAlone().catch((error: unknown) => {
        logger.error({ err: error }, 'a refused redemption could not be recorded');
        return false;
      });
      if (consumed && exchange.onceConsumed) for (const tell of exchange.onceConsumed) tell();
    }
    if (provided.oidc && isRefresh(provided) && (exchange.rows.length > 0 || exchange.held)) {
      if (ctx.status !== 200) return;
      const rotation = exchange.held;
      await storeTokens(
        ctx,
        exchange,
        rotation
          ? async () =>
              (await issuedCodes.rotateRefreshToken({
                id: rotation.id,
                // Stamped as its write begins, not when the provider asked: the nearer its commit,
                // the less a redemption elsewhere that found the token in memory meanwhile takes it
                // for a replay (the adapter's refusal compares the stamp with when it found it).
                at: now(),
                rows: exchange.rows,
              })) || rotation.refused()
          : () => issuedCodes.writeRows(exchange.rows).then(() => true),
        'refresh',
      );
      return;
    }
    if (!provided.oidc || !isCodeExchange(provided)) return;
    const code = provided.oidc.params?.code;
    if (typeof code !== 'string' || code.length === 0) return;
    const clientId = provided.oidc.client?.clientId ?? '';
    /** What the provider revoked in this request for the code's reuse (told once, by the judgement). */
    const revokedHere = () => {
      const revoked = revokedForReuse.peek(ctx, 'code_reuse') ?? [];
      revokedForReuse.forget(ctx);
      return revoked;
    };
    if (exchange.rows.length > 0) {
      if (ctx.status !== 200) return;
      const held = exchange.held;
      if (!held) {
        // Tokens written revoked (the code was replayed meanwhile) are not kept.
        await storeTokens(
          ctx,
          exchange,
          async () => !(await issuedCodes.storeExchangedTokens(code, exchange.rows)),
          'code exchange',
        );
        return;
      }
      // Stamped as its write begins (see the refresh above).
      await storeTokens(
        ctx,
        exchange,
        async () => (await issuedCodes.redeemCode(code, held.id, now(), exchange.rows)) || held.refused(),
        'code exchange',
      );
      // Consumed meanwhile: a replay (or a concurrent redemption that won), judged as any refused code.
      if ((ctx.status as number) === 400 || failedReuseRevocation.peek(ctx, 'code_reuse')) {
        await issuedCodes.judgeRefusedCode(code, clientId, revokedHere());
      }
      failedReuseRevocation.forget(ctx);
      return;
    }
    const body = ctx.body as { error?: unknown } | undefined;
    const revoked = revokedHere();
    const failedRevocation = failedReuseRevocation.peek(ctx, 'code_reuse');
    failedReuseRevocation.forget(ctx);
    // A code the provider revoked the grant for, or tried to, is a replay, even when a revocation that
    // failed made the answer another error: what it revoked is told, and the judgement revokes the rest
    // and counts the reuse.
    if (
      revoked.length > 0 ||
      failedRevocation !== undefined ||
      (ctx.status === 400 && body?.error === 'invalid_grant' && !exchange.consumedHere)
    ) {
      await issuedCodes.judgeRefusedCode(code, clientId, revoked);
    }
    // The provider answered its failed revocation with a 500 (or the 503 of an outage).
    if (failedRevocation !== undefined) {
      noteDatabaseFault(ctx, failedRevocation.error, REUSE_REVOCATION_FAILED);
    }
  };

  return { adapterHooks, middleware, onceTokensStored, onceConsumed };
}
