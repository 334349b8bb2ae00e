import type { Kysely, Transaction } from 'kysely';
import { isUniqueViolation } from '../../db/errors.ts';
import type { Database } from '../../db/schema.ts';
import { inUnitOfWork, type UnitOfWork } from '../../db/unit-of-work.ts';
import type { Logger } from '../../logging/logger.ts';
import { conflict, invalid } from '../errors.ts';
import type { ChangePublisher, DirectoryChange } from '../port.ts';
import * as queries from './queries.ts';
import type {
  ChangeOptions,
  CommittedListener,
  LifecycleEvent,
  LifecycleEventMeta,
  LifecycleSubscriber,
} from './types.ts';
import { quote, validateFlag } from './validation.ts';

/**
 * How every change of the built-in directory runs: one unit of work on aa-oidc's database (the
 * directory's tables live there), in which the change writes its rows, records its
 * `lifecycle_event`, runs the directory's own subscribers, and hands the port's `DirectoryChange`s
 * to the change feed, so that the change and everything it causes (revoked tokens, queued
 * logouts) commit together. Committed listeners (the admin audit) run after the commit.
 */

/** What a change's work receives. */
export interface ChangeScope {
  readonly trx: Transaction<Database>;
  readonly unit: UnitOfWork;
  /**
   * Records `event` (its `lifecycle_event` row), runs the subscribers, and delivers `changes` to
   * the feed's consumers, all inside the change's transaction.
   */
  emit(event: LifecycleEvent, ...changes: DirectoryChange[]): Promise<void>;
}

export interface ChangeRunner {
  run<T>(options: ChangeOptions | undefined, work: (scope: ChangeScope) => Promise<T>): Promise<T>;
  subscribe(subscriber: LifecycleSubscriber): () => void;
  afterCommit(listener: CommittedListener): () => void;
}

function validateActor(actor: unknown): string | null {
  if (actor === undefined) return null;
  if (typeof actor !== 'string' || actor.length === 0 || actor.length > 200 || /\p{Cc}/u.test(actor)) {
    throw invalid(`invalid actor ${quote(actor)}: use 1–200 characters without control characters`);
  }
  return actor;
}

export function createChangeRunner(
  db: Kysely<Database>,
  publisher: Pick<ChangePublisher, 'deliverWithin'> | undefined,
  logger?: Pick<Logger, 'error'>,
): ChangeRunner {
  const subscribers = new Set<LifecycleSubscriber>();
  const listeners = new Set<CommittedListener>();

  function notifyCommitted(event: LifecycleEvent, meta: LifecycleEventMeta): void {
    for (const listener of listeners) {
      const report = (error: unknown) =>
        logger?.error(
          {
            kind: event.kind,
            eventId: meta.eventId,
            error: error instanceof Error ? error.message : String(error),
          },
          'a lifecycle listener failed; the change itself is committed',
        );
      try {
        const pending = listener(event, meta);
        if (pending && typeof pending.then === 'function') pending.catch(report);
      } catch (error) {
        report(error);
      }
    }
  }

  return {
    subscribe(subscriber) {
      subscribers.add(subscriber);
      return () => subscribers.delete(subscriber);
    },

    afterCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async run(options, work) {
      const actor = validateActor(options?.actor);
      const dryRun = options?.dryRun === undefined ? false : validateFlag('dryRun', options.dryRun);
      try {
        return await inUnitOfWork(
          db,
          (unit) =>
            work({
              trx: unit.trx,
              unit,
              async emit(event, ...changes) {
                const eventId = await queries.insertLifecycleEvent(unit.trx, event, actor, unit.at);
                const meta: LifecycleEventMeta = { eventId, at: unit.at, actor, dryRun };
                for (const subscriber of subscribers) await subscriber(event, unit.trx, meta);
                if (changes.length > 0) await publisher?.deliverWithin(unit, ...changes);
                unit.afterCommit(() => notifyCommitted(event, meta));
              },
            }),
          {
            dryRun,
            actor,
            ...(options?.consequences ? { consequences: options.consequences } : {}),
            onCallbackError: (error) =>
              logger?.error(
                { error: error instanceof Error ? error.message : String(error) },
                'an after-commit step of a directory change failed; the change itself is committed',
              ),
          },
        );
      } catch (error) {
        if (isUniqueViolation(error)) {
          throw conflict(
            'the change conflicts with a concurrent one (a name or username was just taken); try again',
          );
        }
        throw error;
      }
    },
  };
}
