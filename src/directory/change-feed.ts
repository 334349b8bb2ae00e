import type { ChangeConsumer, ChangeFeed, ChangePublisher } from './port.ts';

/**
 * The change feed between directories and the consumers of their changes (token revocation,
 * back-channel logout, ended sessions). One per process, built by the composition root; the
 * directory in use publishes into it, consumers subscribe to it.
 */
export function createChangeFeed(): ChangeFeed & ChangePublisher {
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
  };
  return feed;
}
