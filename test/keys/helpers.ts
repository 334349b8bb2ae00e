import { createPrivateKey, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Config } from '../../src/config/load.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createLogger, type Logger, type LogLevel } from '../../src/logging/logger.ts';
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

/** A logger whose lines (parsed JSON) tests can read, from `level` up. */
export function capturingLogger(
  config: Config,
  level: LogLevel = 'info',
): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  const logger = createLogger({ logging: { ...config.logging, level } }, { destination });
  return { logger, lines };
}

/**
 * A PEM that parses as an RSA private key of `bits` bits with exponent `e`, made of random numbers
 * (generating a real 16384-bit key takes a minute): the checks refuse it before anything uses it.
 */
export function craftedPem(bits: number, e: number): string {
  const number = (length: number) => randomBytes(length).toString('base64url');
  const hex = e.toString(16);
  const modulus = randomBytes(bits / 8);
  modulus[0]! |= 0x80;
  const jwk = {
    kty: 'RSA',
    n: modulus.toString('base64url'),
    e: Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex').toString('base64url'),
    d: number(bits / 8),
    p: number(bits / 16),
    q: number(bits / 16),
    dp: number(bits / 16),
    dq: number(bits / 16),
    qi: number(bits / 16),
  };
  return createPrivateKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}
