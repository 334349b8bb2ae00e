import type Koa from 'koa';
import type { Kysely } from 'kysely';
import type { DatabaseKind } from '../db/connect.ts';
import { isReachable } from '../db/connect.ts';
import { pendingMigrations } from '../db/migrate.ts';
import type { Database } from '../db/schema.ts';

/** Another system the server cannot serve without (Alliance Auth's database), for `/readyz`. */
export interface ReadinessDependency {
  /** The key in `/readyz`'s answer (`allianceAuth`). */
  name: string;
  reachable(): Promise<boolean>;
}

/**
 * `/healthz`: the process answers. `/readyz`: the database is reachable and fully migrated, and every
 * dependency answers.
 */
export function healthRoutes(
  db: Kysely<Database>,
  kind: DatabaseKind,
  dependencies: readonly ReadinessDependency[] = [],
): Koa.Middleware {
  const answer: Koa.Middleware = async (ctx) => {
    if (ctx.path === '/healthz') {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path === '/readyz') {
      ctx.set('Cache-Control', 'no-store');
      const reachable = await isReachable(db);
      const pending = reachable ? await pendingMigrations(db, kind).catch(() => null) : null;
      const others = await Promise.all(
        dependencies.map(async (dependency) => [dependency.name, await dependency.reachable()] as const),
      );
      const ready =
        reachable && pending !== null && pending.length === 0 && others.every(([, answers]) => answers);
      ctx.status = ready ? 200 : 503;
      ctx.body = {
        status: ready ? 'ready' : 'not_ready',
        database: reachable ? 'reachable' : 'unreachable',
        pendingMigrations: pending ?? undefined,
        ...Object.fromEntries(others.map(([name, answers]) => [name, answers ? 'reachable' : 'unreachable'])),
      };
    }
  };
  // Every other request passes on without waiting here.
  return (ctx, next) =>
    (ctx.method === 'GET' || ctx.method === 'HEAD') && (ctx.path === '/healthz' || ctx.path === '/readyz')
      ? answer(ctx, next)
      : next();
}
