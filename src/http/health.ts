import type Koa from 'koa';
import type { Kysely } from 'kysely';
import type { DatabaseKind } from '../db/connect.ts';
import { isReachable } from '../db/connect.ts';
import { pendingMigrations } from '../db/migrate.ts';
import type { Database } from '../db/schema.ts';

/** `/healthz`: the process answers. `/readyz`: the database is reachable and fully migrated. */
export function healthRoutes(db: Kysely<Database>, kind: DatabaseKind): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/healthz') {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path === '/readyz') {
      ctx.set('Cache-Control', 'no-store');
      const reachable = await isReachable(db);
      const pending = reachable ? await pendingMigrations(db, kind).catch(() => null) : null;
      const ready = reachable && pending !== null && pending.length === 0;
      ctx.status = ready ? 200 : 503;
      ctx.body = {
        status: ready ? 'ready' : 'not_ready',
        database: reachable ? 'reachable' : 'unreachable',
        pendingMigrations: pending ?? undefined,
      };
      return;
    }
    return next();
  };
}
