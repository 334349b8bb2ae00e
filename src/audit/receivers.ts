import { type FileHandle, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { type Logger, VettedFields } from '../logging/logger.ts';
import { assertNever } from '../util/assert-never.ts';
import { scrubValue } from '../logging/redact.ts';
import { escapeUnshownInJson } from '../util/hidden-characters.ts';
import type { AuditReceiver } from './bus.ts';
import type { AuditRecord } from './events.ts';

/**
 * Events made only of identifiers, digests, enumerations, numbers and booleans (their types in
 * events.ts carry no free text): safe by construction, logged as they are. The others (admin
 * changes with names and details, a revocation's operator note, an actor's name) go through the
 * logger's scrub.
 */
export function closedEvent(record: Readonly<AuditRecord>): boolean {
  switch (record.kind) {
    case 'token_issued':
    case 'token_introspected':
    case 'code_reuse_detected':
    case 'logout_required':
    case 'logout_dispatched':
    case 'policy_denied':
      return true;
    case 'token_revoked':
      return record.note === undefined;
    // two_factor_failed: its address is a header's text behind a trusted proxy, whatever a client wrote.
    case 'admin_change':
    case 'sessions_ended':
    case 'two_factor_failed':
      return false;
    default:
      return assertNever(record);
  }
}

/** The log line of a closed event: marked safe by its class, not per object (see `VettedFields`). */
class ClosedEventLine extends VettedFields {
  readonly audit: Readonly<AuditRecord>;

  constructor(record: Readonly<AuditRecord>) {
    super();
    this.audit = record;
  }
}

/** The structured log: one INFO line per event under `audit`, through the redacting logger. */
export function logAuditReceiver(logger: Logger): AuditReceiver {
  const log = logger.child({ component: 'audit' });
  return {
    name: 'log',
    showsMaskedSecrets: true,
    receive(record) {
      if (!log.isLevelEnabled('info')) return;
      log.info(closedEvent(record) ? new ClosedEventLine(record) : { audit: record }, `audit ${record.kind}`);
    },
  };
}

/**
 * The JSON-lines sink (`audit.jsonlPath`): appends one JSON object per line, `time` and `kind`
 * first, in publication order. The file (mode 0600) and its folder are created on first use.
 */
export function jsonlAuditReceiver(file: string): AuditReceiver {
  const target = path.resolve(file);
  let handle: Promise<FileHandle> | undefined;
  // Writes are chained so that lines never interleave and keep publication order.
  let tail: Promise<unknown> = Promise.resolve();
  const openOnce = () => {
    if (handle) return handle;
    const opening = mkdir(path.dirname(target), { recursive: true }).then(() => open(target, 'a', 0o600));
    handle = opening;
    // A failed open is retried on the next event rather than failing every later event.
    opening.catch(() => {
      if (handle === opening) handle = undefined;
    });
    return opening;
  };
  return {
    name: 'jsonl',
    showsMaskedSecrets: true,
    receive(record) {
      // A name from Alliance Auth may hold a C1 control or U+2028: escaped, as in the log's lines.
      const line = `${escapeUnshownInJson(JSON.stringify(scrubValue(record)))}\n`;
      const write = tail.then(async () => {
        const file = await openOnce();
        await file.appendFile(line, 'utf8');
      });
      tail = write.catch(() => undefined);
      return write;
    },
    async close() {
      await tail;
      const opened = handle;
      handle = undefined;
      if (opened) await (await opened.catch(() => undefined))?.close();
    },
  };
}
