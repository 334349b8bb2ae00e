import type Koa from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../logging/logger.ts';
import type { IssuedCodes } from '../tokens/issued-codes.ts';
import type { PayloadRow } from '../tokens/store.ts';
import type { AdapterWriteHooks } from './adapter.ts';
import { currentRequest } from './provider-internals.ts';
import { RequestMemo } from './request-memo.ts';

/**
 * The code exchange around oidc-provider's token endpoint, for the issued-code audit and code-reuse
 * detection (src/tokens/issued-codes.ts): the adapter hooks hold back the token rows of an
 * `authorization_code` exchange and record the consumed code; the middleware (installed with
 * `provider.use()`) writes the held rows with their audit row once the response is built, or judges
 * a refused code.
 */
export interface CodeExchangeHooks {
  /** Handed to the `KyselyAdapter`s of the provider. */
  adapterHooks: AdapterWriteHooks;
  /** Installed with `provider.use()`. */
  middleware: Koa.Middleware;
}

interface CodeExchange {
  rows: PayloadRow[];
  /** This request consumed the code (a later refusal, e.g. a deactivated user, is no replay). */
  consumedHere: boolean;
}

const DEFERRED_MODELS = new Set(['AccessToken', 'RefreshToken']);

function isCodeExchange(ctx: Pick<KoaContextWithOIDC, 'oidc'> | undefined): boolean {
  return ctx?.oidc?.route === 'token' && ctx.oidc.params?.grant_type === 'authorization_code';
}

export function codeExchangeHooks(
  issuedCodes: IssuedCodes,
  logger: Pick<Logger, 'error'>,
  now: () => number = Date.now,
): CodeExchangeHooks {
  const exchanges = new RequestMemo<'exchange', CodeExchange>();

  const adapterHooks: AdapterWriteHooks = {
    deferWrite(row) {
      if (!DEFERRED_MODELS.has(row.model)) return false;
      const ctx = currentRequest();
      const exchange = exchanges.peek(ctx, 'exchange');
      if (!exchange || !isCodeExchange(ctx)) return false;
      exchange.rows.push(row);
      return true;
    },
    async codeConsumed(trx, code) {
      const exchange = exchanges.peek(currentRequest(), 'exchange');
      if (exchange) exchange.consumedHere = true;
      await issuedCodes.recordConsumedCode(trx, code);
    },
  };

  const middleware: Koa.Middleware = async (ctx, next) => {
    if (ctx.method !== 'POST') return next();
    const startedAt = now();
    const exchange: CodeExchange = { rows: [], consumedHere: false };
    exchanges.set(ctx, 'exchange', exchange);
    try {
      await next();
    } finally {
      exchanges.forget(ctx);
    }
    const provided = ctx as unknown as KoaContextWithOIDC;
    if (!provided.oidc || !isCodeExchange(provided)) return;
    const code = provided.oidc.params?.code;
    if (typeof code !== 'string' || code.length === 0) return;
    if (exchange.rows.length > 0) {
      if (ctx.status !== 200) return;
      try {
        await issuedCodes.storeExchangedTokens(code, exchange.rows);
      } catch (error) {
        logger.error({ err: error }, 'the tokens of a code exchange could not be stored');
        ctx.status = 500;
        ctx.body = { error: 'server_error', error_description: 'the tokens could not be issued' };
      }
      return;
    }
    const body = ctx.body as { error?: unknown } | undefined;
    if (ctx.status === 400 && body?.error === 'invalid_grant' && !exchange.consumedHere) {
      await issuedCodes.judgeRefusedCode(code, provided.oidc.client?.clientId ?? '', startedAt);
    }
  };

  return { adapterHooks, middleware };
}
