import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

/**
 * A fresh, empty database for one test: a temporary SQLite file by default, or a new PostgreSQL
 * database created next to `AA_OIDC_TEST_DATABASE_URL` when that is set (and dropped afterwards).
 */
export interface TestDatabase {
  kind: 'sqlite' | 'postgres';
  /** The value for `AA_OIDC_DATABASE_URL`. */
  url: string;
  /** Folder for the app's data (secret key, SQLite file). */
  dataDir: string;
  drop(): Promise<void>;
}

export const testDatabaseKind: 'sqlite' | 'postgres' = process.env.AA_OIDC_TEST_DATABASE_URL
  ? 'postgres'
  : 'sqlite';

export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'aa-oidc-test-'));
  const baseUrl = process.env.AA_OIDC_TEST_DATABASE_URL;
  if (!baseUrl) {
    return {
      kind: 'sqlite',
      url: `sqlite:${path.join(dataDir, 'test.sqlite')}`,
      dataDir,
      drop: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const name = `aa_oidc_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    kind: 'postgres',
    url: url.toString(),
    dataDir,
    drop: async () => {
      const dropper = new pg.Client({ connectionString: baseUrl });
      await dropper.connect();
      try {
        await dropper.query(`drop database if exists ${name} with (force)`);
      } finally {
        await dropper.end();
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
