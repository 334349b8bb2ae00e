import type { Logger } from '../logging/logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import { isoNowOncePerMillisecond } from '../util/iso-time.ts';
import type { AuditEvent, AuditEventKind, AuditRecord } from './events.ts';

/**
 * A consumer of audit records. `receive` may be synchronous or return a promise; either way it runs
 * off the publisher's path, alone, under a timeout.
 */
export interface AuditReceiver {
  /** The `receiver` label of `aa_oidc_audit_receiver_failures_total`; short and fixed (`log`, `jsonl`). */
  readonly name: string;
  receive(record: Readonly<AuditRecord>): void | Promise<void>;
  /** Kinds this receiver is never given (the database's `audit.databaseExclude`); it gets every kind without. */
  readonly skips?: ReadonlySet<AuditEventKind>;
  /**
   * True for the receivers whose records carry the publisher's `masked` fragments (`PublishContext`):
   * the log and the JSON-lines sink, what a developer reads while the server runs. The others (the
   * database's table, a test's or an embedder's receiver) get the event alone.
   */
  readonly showsMaskedSecrets?: boolean;
  /** Flushes and releases resources; called once by `AuditBus.close()`. */
  close?(): void | Promise<void>;
  /**
   * Told once that the process's stop began (`AuditBus.stopping()`). A receiver that has it tells at
   * its `close` of every delivery since then it did not finish (the database store: the events whose
   * write failed or had not ended, counted by kind in one line): the bus counts their failures but
   * logs them at `debug` only, rather than a line per event beside that count.
   */
  stopping?(): void;
}

export interface PublishContext {
  /** The request the event belongs to (`ctx.state.requestId`). */
  requestId?: string;
  /**
   * Head/tail fragments (`SecretFormatter.maskSecret`) of the token or code the event names by digest,
   * given only when masks are enabled (development with `logging.maskedSecrets`; never in production,
   * where check W001 warns of the setting). Added to the records of the receivers that show them
   * (`showsMaskedSecrets`: the log and the JSON-lines sink), never to the event: the database's
   * `audit_event` table is kept for `audit.retentionDays`, shown to every admin and by `aa-oidc audit
   * list`, and goes into backups, where 8 characters of a token serve nobody's debugging and only
   * narrow the guess of a token that may still be live; a developer correlating a token with the
   * server's work reads the log.
   */
  masked?: MaskedFragment;
}

/** What `PublishContext.masked` adds to a record: a token's (`token_sha256`), or a code's (`code_hash`). */
export type MaskedFragment = { readonly token_masked: string } | { readonly code_masked: string };

export interface AuditBus {
  /**
   * Hands the event to every receiver and returns at once. Never throws and never waits for a
   * receiver: each runs separately, under `audit.receiverTimeoutMs`; a throw, rejection, timeout or
   * overload is counted in `aa_oidc_audit_receiver_failures_total{signal,receiver}` and logged.
   */
  publish(event: AuditEvent, context?: PublishContext): void;
  /** Adds a receiver; returns the function that removes it. */
  subscribe(receiver: AuditReceiver): () => void;
  /** Resolves once every delivery started so far has finished or timed out (tests, shutdown). */
  idle(): Promise<void>;
  /**
   * The process's stop began (before the work that still publishes has ended): the receivers that
   * account at their close for what they did not finish (`AuditReceiver.stopping`) are told, and
   * their failures from now on are not logged one by one. Called by `close` too.
   */
  stopping(): void;
  /** Waits for `idle()`, then closes the receivers. Later events are dropped (logged at `warn`). */
  close(): Promise<void>;
}

export interface AuditBusOptions {
  logger: Logger;
  metrics: Pick<Metrics, 'auditReceiverFailures'>;
  receiverTimeoutMs: number;
  receivers?: readonly AuditReceiver[];
  /**
   * Deliveries to one receiver that may be pending at once; beyond that, events for that receiver
   * are counted as failures instead of piling up behind a hung receiver (default 100,000: one
   * committed change may publish that many at once, e.g. a state taken from thousands of users
   * publishes a `token_revoked` per token and a `logout_required` per application and session).
   */
  maxPendingPerReceiver?: number;
}

export const DEFAULT_MAX_PENDING_PER_RECEIVER = 100_000;

/**
 * A receiver's timer firing later than this says the loop was held during the wait: a quarter of the
 * timeout, at most 50 ms (a busy loop's timers run a few milliseconds late).
 */
const heldAfter = (receiverTimeoutMs: number) => Math.min(receiverTimeoutMs / 4, 50);

type Outcome =
  { ok: true } | { ok: false; failure: 'error'; error: unknown } | { ok: false; failure: 'timeout' };
const OK: Outcome = Object.freeze({ ok: true });

export function createAuditBus(options: AuditBusOptions): AuditBus {
  const { logger, metrics, receiverTimeoutMs } = options;
  const maxPending = options.maxPendingPerReceiver ?? DEFAULT_MAX_PENDING_PER_RECEIVER;
  // Each receiver once, in the order they came; replaced, never changed in place, by `subscribe`.
  // `publish` walks it by index, without an iterator per event.
  let receivers: readonly AuditReceiver[] = [...new Set(options.receivers ?? [])];
  const pendingByReceiver = new Map<AuditReceiver, number>();
  const inFlight = new Set<Promise<void>>();
  const isoNow = isoNowOncePerMillisecond();
  let closed = false;
  // The receivers told that the stop began: their close accounts for what they did not finish.
  const accountingAtClose = new WeakSet<AuditReceiver>();

  const recordFailure = (
    receiver: AuditReceiver,
    record: AuditRecord,
    failure: 'error' | 'timeout' | 'overloaded',
    error?: unknown,
  ) => {
    try {
      metrics.auditReceiverFailures.inc({ signal: record.kind, receiver: receiver.name });
      // An event the receiver was given (not one refused as overload) is in its count at its close.
      const level = failure !== 'overloaded' && accountingAtClose.has(receiver) ? 'debug' : 'warn';
      logger[level](
        { receiver: receiver.name, signal: record.kind, failure, err: error, timeoutMs: receiverTimeoutMs },
        'audit receiver failed',
      );
    } catch {
      // Counting must not be the thing that breaks the publisher.
    }
  };

  /**
   * The outcome of a receiver's promise, raced against `receiverTimeoutMs`. A receiver that answers
   * several events with one promise (the database receiver: one per batch it inserts) gets one timer
   * and one race for them all, timed from the first of them.
   *
   * The timeout is called one turn of the event loop after its timer fires (`setImmediate`, after the
   * turn's I/O): when other synchronous work held the loop past the timeout (a large import, a state
   * change over thousands of users on SQLite), the receiver's own timers, I/O and immediates that were
   * due meanwhile run first, and a receiver that was only waiting for its turn is not counted as hung.
   * When the timer itself fired late (`heldAfter`), the loop was held during the wait: the receiver
   * gets a full timeout again from then, so that one whose work needs several turns (the database
   * receiver's batch on SQLite's write worker) is not counted as hung either. A hung receiver is
   * still counted, once the loop has been free for a whole timeout.
   */
  const races = new WeakMap<PromiseLike<void>, Promise<Outcome>>();
  const raceOf = (result: PromiseLike<void>): Promise<Outcome> => {
    let raced = races.get(result);
    if (raced) return raced;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Outcome>((resolve) => {
      const arm = () => {
        const due = Date.now() + receiverTimeoutMs;
        timer = setTimeout(() => {
          // Fired late: the loop was held for part of the wait, and a receiver whose work needs
          // turns of it (the database receiver's batch on SQLite's write worker: its delay, the
          // flush, the worker's answer) had less than its timeout. It gets a full one from now.
          if (Date.now() - due > heldAfter(receiverTimeoutMs)) arm();
          else setImmediate(() => resolve({ ok: false, failure: 'timeout' }));
        }, receiverTimeoutMs);
      };
      arm();
    });
    const run = Promise.resolve(result).then(
      (): Outcome => ({ ok: true }),
      (error: unknown): Outcome => ({ ok: false, failure: 'error', error }),
    );
    raced = Promise.race([run, timeout]).finally(() => clearTimeout(timer));
    races.set(result, raced);
    return raced;
  };

  /**
   * A receiver's outcome. Only an asynchronous receiver needs a timer: a synchronous one has
   * finished by the time it returns (it cannot be interrupted, with or without a timer).
   */
  const outcomeOf = (receiver: AuditReceiver, record: AuditRecord): Outcome | Promise<Outcome> => {
    let result: void | PromiseLike<void>;
    try {
      result = receiver.receive(record);
    } catch (error) {
      return { ok: false, failure: 'error', error };
    }
    if (typeof (result as PromiseLike<void> | undefined)?.then !== 'function') return OK;
    return raceOf(result as PromiseLike<void>);
  };

  const settle = (receiver: AuditReceiver, record: AuditRecord, outcome: Outcome) => {
    pendingByReceiver.set(receiver, (pendingByReceiver.get(receiver) ?? 1) - 1);
    if (!outcome.ok)
      recordFailure(receiver, record, outcome.failure, 'error' in outcome ? outcome.error : undefined);
  };

  /**
   * Deliveries published since the last drain, run in one microtask: off the publisher's path (a
   * receiver never runs inside publish()), in publication order, without a promise chain of their
   * own per event and receiver.
   */
  // Side by side (the receiver and the record of each delivery), without an object per delivery.
  let queuedReceivers: AuditReceiver[] = [];
  let queuedRecords: AuditRecord[] = [];
  const drain = () => {
    const deliveryReceivers = queuedReceivers;
    const deliveryRecords = queuedRecords;
    queuedReceivers = [];
    queuedRecords = [];
    // Events a receiver answered with one promise wait on it together.
    let waiting: Map<Promise<Outcome>, { receiver: AuditReceiver; records: AuditRecord[] }> | undefined;
    for (let index = 0; index < deliveryReceivers.length; index += 1) {
      const receiver = deliveryReceivers[index]!;
      const record = deliveryRecords[index]!;
      const outcome = outcomeOf(receiver, record);
      if (!(outcome instanceof Promise)) {
        settle(receiver, record, outcome);
        continue;
      }
      waiting ??= new Map();
      const group = waiting.get(outcome);
      if (group && group.receiver === receiver) group.records.push(record);
      else if (group) track(outcome, receiver, [record]);
      else waiting.set(outcome, { receiver, records: [record] });
    }
    if (waiting) for (const [outcome, { receiver, records }] of waiting) track(outcome, receiver, records);
  };
  const track = (outcome: Promise<Outcome>, receiver: AuditReceiver, records: AuditRecord[]) => {
    const tracked: Promise<void> = outcome
      .then((settled) => {
        for (const record of records) settle(receiver, record, settled);
      })
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  const deliver = (receiver: AuditReceiver, record: AuditRecord) => {
    const pending = pendingByReceiver.get(receiver) ?? 0;
    if (pending >= maxPending) {
      recordFailure(receiver, record, 'overloaded');
      return;
    }
    pendingByReceiver.set(receiver, pending + 1);
    queuedReceivers.push(receiver);
    queuedRecords.push(record);
    if (queuedReceivers.length > 1) return;
    const drained: Promise<void> = Promise.resolve()
      .then(drain)
      .finally(() => inFlight.delete(drained));
    inFlight.add(drained);
  };

  const stopping = () => {
    for (const receiver of receivers) {
      if (!receiver.stopping || accountingAtClose.has(receiver)) continue;
      try {
        receiver.stopping();
        accountingAtClose.add(receiver);
      } catch (error) {
        logger.warn({ receiver: receiver.name, err: error }, 'telling an audit receiver of the stop failed');
      }
    }
  };

  return {
    publish(event, context = {}) {
      try {
        if (closed) {
          logger.warn({ signal: event.kind }, 'audit event published after shutdown was dropped');
          return;
        }
        // Copied member by member into the record itself (the same members, in the same order, as
        // `{ time, ...event, request_id }` copied whole), without the intermediate objects.
        const copy: Record<string, unknown> = { time: isoNow() };
        const members = event as unknown as Record<string, unknown>;
        // for…in over the own members (Object.keys' members, in its order) without an array of them.
        for (const key in members) if (Object.hasOwn(members, key)) copy[key] = frozenCopy(members[key]);
        if (context.requestId !== undefined) copy.request_id = context.requestId;
        const record = Object.freeze(copy) as unknown as AuditRecord;
        // With masks off (the default, and always in production) no publisher gives fragments: no
        // second record, and every receiver gets the same one.
        const shown =
          context.masked === undefined
            ? record
            : (Object.freeze({ ...record, ...context.masked }) as AuditRecord);
        for (let index = 0; index < receivers.length; index += 1) {
          const receiver = receivers[index]!;
          if (receiver.skips?.has(event.kind) !== true)
            deliver(receiver, receiver.showsMaskedSecrets === true ? shown : record);
        }
      } catch (error) {
        // A malformed event (e.g. not cloneable) is a programming error; it must still not fail the caller.
        try {
          logger.error(
            { err: error, signal: (event as { kind?: unknown })?.kind },
            'audit event could not be published',
          );
        } catch {
          // nothing left to do
        }
      }
    },
    subscribe(receiver) {
      if (!receivers.includes(receiver)) receivers = [...receivers, receiver];
      return () => {
        receivers = receivers.filter((kept) => kept !== receiver);
      };
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    stopping,
    async close() {
      if (closed) return;
      stopping();
      closed = true;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      for (const receiver of receivers) {
        try {
          await receiver.close?.();
        } catch (error) {
          logger.warn({ receiver: receiver.name, err: error }, 'closing an audit receiver failed');
        }
      }
    },
  };
}

/**
 * A frozen copy of an event, so that neither the publisher nor a receiver can change what the others
 * see. Events are plain data (objects, arrays, strings, numbers…), copied by hand, which costs far
 * less than `structuredClone` on every request; anything else is left to `structuredClone` (which
 * refuses what cannot be copied, such as a function).
 */
function frozenCopy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    return typeof value === 'function' || typeof value === 'symbol' ? structuredClone(value) : value;
  }
  if (Array.isArray(value)) return Object.freeze(value.map(frozenCopy));
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return deepFreeze(structuredClone(value));
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = frozenCopy((value as Record<string, unknown>)[key]);
  return Object.freeze(copy);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
