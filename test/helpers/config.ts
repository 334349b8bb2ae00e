import { fileURLToPath } from 'node:url';
import { type Config, loadConfig } from '../../src/config/load.ts';
import type { TestDatabase } from './database.ts';

const NETWORK_GUARD = fileURLToPath(new URL('./network-guard.ts', import.meta.url));

/** A development configuration around a test database, with no environment leaking in. */
export function testConfig(database: TestDatabase, overrides: Record<string, unknown> = {}): Config {
  return loadConfig({
    env: {},
    cwd: database.dataDir,
    overrides: {
      databaseUrl: database.url,
      dataDir: database.dataDir,
      port: 0,
      logging: { level: 'silent' },
      metrics: { enabled: false },
      ...overrides,
    },
  });
}

/** The environment for running the CLI (in-process or as a process) against a test database. */
export function testEnv(database: TestDatabase, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('AA_OIDC_')) env[name] = value;
  }
  return {
    ...env,
    AA_OIDC_DATABASE_URL: database.url,
    AA_OIDC_DATA_DIR: database.dataDir,
    AA_OIDC_LOG_LEVEL: 'warn',
    // The spawned process refuses non-loopback lookups and connections, as the test runner does.
    NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import=${NETWORK_GUARD}`].filter(Boolean).join(' '),
    // A spawned `serve` must not bind the fixed metrics port 9464, which another test may hold.
    AA_OIDC_METRICS_PORT: '0',
    NODE_ENV: 'development',
    ...extra,
  };
}
