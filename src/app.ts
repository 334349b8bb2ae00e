import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Config } from './config/load.ts';
import { type DatabaseHandle, openDatabase } from './db/connect.ts';
import { migrateToLatest } from './db/migrate.ts';
import { healthRoutes } from './http/health.ts';
import { createLogger, type Logger, type LoggerOptions } from './logging/logger.ts';

export interface AppOptions {
  logger?: LoggerOptions;
  /** Apply pending migrations while building the app (default: in development mode only). */
  migrate?: boolean;
}

/**
 * The composition root: builds the database, the services and the HTTP app, and passes them down.
 * Nothing here is a module-level singleton; tests build their own app around a temporary database.
 */
export interface App {
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  koa: Koa;
  /** Starts listening on the configured host and port; resolves with the bound address. */
  listen(overrides?: { port?: number; host?: string }): Promise<AddressInfo>;
  /** Stops accepting connections, lets in-flight requests finish, then closes the database. */
  close(): Promise<void>;
}

export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = createLogger(config, options.logger);
  const database = openDatabase(config.database);
  try {
    if (options.migrate ?? config.mode === 'development') {
      const applied = await migrateToLatest(database.db, database.kind);
      if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
    }
  } catch (error) {
    await database.close();
    throw error;
  }

  const koa = new Koa({ proxy: config.trustProxy });
  koa.use(healthRoutes(database.db, database.kind));

  let server: Server | undefined;
  return {
    config,
    logger,
    database,
    koa,
    listen(overrides = {}) {
      return new Promise((resolve, reject) => {
        const listening = koa.listen(overrides.port ?? config.port, overrides.host ?? config.host);
        listening.once('error', reject);
        listening.once('listening', () => {
          server = listening;
          resolve(listening.address() as AddressInfo);
        });
      });
    },
    async close() {
      if (server) {
        const closing = server;
        server = undefined;
        await new Promise<void>((resolve) => {
          closing.close(() => resolve());
          closing.closeIdleConnections();
        });
      }
      await database.close();
      logger.flush();
    },
  };
}
