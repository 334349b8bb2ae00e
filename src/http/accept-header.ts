import type Koa from 'koa';
import { answerRefusal } from './refusal.ts';

/** The longest Accept header read; a browser's is about 150 bytes. */
export const ACCEPT_HEADER_MAX_BYTES = 4096;

/**
 * An Accept header past `ACCEPT_HEADER_MAX_BYTES` is a 431 before anything reads it. The provider
 * reads it on each of its errors and at introspection (Koa's `ctx.accepts`, the negotiator package),
 * which joins a quoted value's pieces again for each comma after an unclosed `"`: 13 to 24 ms of CPU
 * for the 16 KB a request's head may hold, under a millisecond at this limit.
 */
export function refuseOversizedAccept(): Koa.Middleware {
  return (ctx, next) => {
    const accept = ctx.req.headers.accept;
    if (accept === undefined || accept.length <= ACCEPT_HEADER_MAX_BYTES) return next();
    answerRefusal(
      ctx,
      {
        status: 431,
        error: 'invalid_request',
        description: `The Accept header is too long (at most ${ACCEPT_HEADER_MAX_BYTES} bytes).`,
      },
      'json',
    );
  };
}
