import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { inUnitOfWork } from '../db/unit-of-work.ts';
import type { Logger } from '../logging/logger.ts';
import type { ChangeConsumer, ChangeFeed, ChangePublisher } from './port.ts';

/**
 * The change feed between directories and the consumers of their changes (token revocation,
 * back-channel logout, ended sessions). One per process, built by the composition root; the
 * directory in use publishes into it, consumers subscribe to it.
 */
export function createChangeFeed(
  db: Kysely<Database>,
  logger?: Pick<Logger, 'error'>,
): ChangeFeed & ChangePublisher {
  const consumers = new Set<ChangeConsumer>();
  const feed: ChangeFeed & ChangePublisher = {
    subscribe(consumer) {
      consumers.add(consumer);
      return () => consumers.delete(consumer);
    },
    async deliverWithin(unit, ...changes) {
      for (const consumer of [...consumers]) {
        if (consumer.batch && changes.length > 1) await consumer.batch(changes, unit);
        else for (const change of changes) await consumer(change, unit);
      }
    },
    async deliver(changes, record) {
      if (changes.length === 0 && !record) return;
      await inUnitOfWork(
        db,
        async (unit) => {
          await feed.deliverWithin(unit, ...changes);
          await record?.(unit);
        },
        {
          onCallbackError: (error) =>
            logger?.error(
              { err: { name: (error as Error)?.name, message: (error as Error)?.message } },
              'a directory change consumer failed after commit; the change itself is committed',
            ),
        },
      );
    },
  };
  return feed;
}
