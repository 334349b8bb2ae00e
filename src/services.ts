import type { Config } from './config/load.ts';
import { type DatabaseHandle, openDatabase } from './db/connect.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createLogger, type Logger, type LoggerOptions } from './logging/logger.ts';

export interface ServicesOptions {
  logger?: LoggerOptions;
  /** Apply pending migrations first (default: in development mode only). */
  migrate?: boolean;
}

/**
 * Everything but HTTP: the database and the domain services, built once and passed down. The CLI
 * uses this directly; `createApp` adds the HTTP surface on top. Nothing is a module-level singleton.
 */
export interface Services {
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  /** Releases everything this object opened, in reverse order. */
  close(): Promise<void>;
}

export async function createServices(config: Config, options: ServicesOptions = {}): Promise<Services> {
  const logger = createLogger(config, options.logger);
  const database = openDatabase(config.database);
  const closers: Array<() => Promise<void> | void> = [() => database.close()];
  const close = async () => {
    for (const closer of closers.reverse()) await closer();
    logger.flush();
  };
  try {
    if (options.migrate ?? config.mode === 'development') {
      const applied = await migrateToLatest(database.db, database.kind);
      if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
    }
    return { config, logger, database, close };
  } catch (error) {
    await close();
    throw error;
  }
}
