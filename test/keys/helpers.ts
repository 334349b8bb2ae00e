import { Writable } from 'node:stream';
import type { Config } from '../../src/config/load.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createLogger, type Logger } from '../../src/logging/logger.ts';
import { testConfig } from '../helpers/config.ts';
import type { TestDatabase } from '../helpers/database.ts';

/** A migrated database connection of its own, as one running instance (or the CLI) would have. */
export async function openInstance(
  database: TestDatabase,
  overrides: Record<string, unknown> = {},
): Promise<{ config: Config; handle: DatabaseHandle }> {
  const config = testConfig(database, overrides);
  const handle = openDatabase(config.database);
  await migrateToLatest(handle.db, handle.kind);
  return { config, handle };
}

/** A logger whose lines (parsed JSON) tests can read. */
export function capturingLogger(config: Config): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  const logger = createLogger({ logging: { ...config.logging, level: 'info' } }, { destination });
  return { logger, lines };
}
