import { createApplicationService } from './applications/service.ts';
import type { ApplicationService } from './applications/types.ts';
import type { Config } from './config/load.ts';
import { type DatabaseHandle, openDatabase } from './db/connect.ts';
import { migrateToLatest, pendingMigrations } from './db/migrate.ts';
import { createKeyService, type KeyService } from './keys/service.ts';
import { createKeyStore } from './keys/store.ts';
import type { KeyStore } from './keys/types.ts';
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
  /** The one write path for applications (OIDC clients, section C), and their lookup. */
  applications: ApplicationService;
  /** The one write path for signing keys (section L). */
  keys: KeyService;
  /** The signing keys as loaded in this process; reloads within seconds after a rotation anywhere. */
  keyStore: KeyStore;
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
    const keys = createKeyService(database, config, logger);
    // On a database with pending migrations (production before `aa-oidc migrate`) the store starts
    // empty and keeps polling; /readyz reports the pending migrations meanwhile.
    const migrated = (await pendingMigrations(database.db, database.kind)).length === 0;
    if (migrated) await keys.ensureActiveKey();
    const keyStore = await createKeyStore(database.db, config, logger, { initialLoad: migrated });
    closers.push(() => keyStore.close());
    const applications = createApplicationService(database.db, config, logger);
    return { config, logger, database, keys, keyStore, applications, close };
  } catch (error) {
    await close();
    throw error;
  }
}
