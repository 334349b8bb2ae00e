import { type FileHandle, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logging/logger.ts';
import { scrubValue } from '../logging/redact.ts';
import type { AuditReceiver } from './bus.ts';

/** The structured log: one INFO line per event under `audit`, through the redacting logger. */
export function logAuditReceiver(logger: Logger): AuditReceiver {
  const log = logger.child({ component: 'audit' });
  return {
    name: 'log',
    receive(record) {
      log.info({ audit: record }, `audit ${record.kind}`);
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
    receive(record) {
      const line = `${JSON.stringify(scrubValue(record))}\n`;
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
