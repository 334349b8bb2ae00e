import type { KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type { Config } from '../config/load.ts';
import type { Kysely } from 'kysely';
import type { Database, SigningKeyRow } from '../db/schema.ts';
import { logFailure } from '../logging/after-stop.ts';
import type { Logger } from '../logging/logger.ts';
import {
  decryptPrivateJwk,
  deriveKeyEncryptionKey,
  importPrivateJwk,
  KeyDecryptionError,
  SIGNING_ALG,
} from './crypto.ts';
import { erasingKeyWrite, type KeyDatabase } from './erasure.ts';
import { keySetFingerprint, publishedKeyRows, removeExpiredKeys } from './queries.ts';
import type { KeyStore, LoadedSigningKey, UnloadableSigningKey } from './types.ts';

export interface KeyStoreOptions {
  /** Load now and fail on error (default). False: start empty and let the timer load (unmigrated database). */
  initialLoad?: boolean;
  /** Overrides `config.keys.reloadIntervalMs`. */
  reloadIntervalMs?: number;
  /**
   * Log a warning when the database has no active key (default true: a process that signs, `serve`
   * or `worker`). The CLI's administrative commands sign nothing, or fail naming the cause when they
   * would (`bcl test`); `aa-oidc check` reports the state (W011).
   */
  warnWithoutActiveKey?: boolean;
  /**
   * Reload every `reloadIntervalMs` (default true). False: load only when asked (`reload`), for a
   * command that signs nothing and does not load the keys (`aa-oidc check`, `aa-oidc keys list`).
   */
  watch?: boolean;
  /** For tests. */
  now?: () => number;
}

/** Key material never changes for a kid, so a parsed key is reused across reloads. */
interface ParsedKey {
  privateJwk: JWK;
  privateKey: KeyObject;
}

const STATUS_ORDER = { active: 0, next: 1, retired: 2 } as const;

/**
 * The process's view of the signing keys. Every `reloadIntervalMs` it runs one small query
 * (`count(*)`, `sum(revision)`) and reloads only when that changed; a new kid is decrypted and parsed
 * once, then reused. So a rotation made by any instance or by the CLI is served by every instance
 * within seconds, without a restart.
 *
 * Clean-up: when a retired key it publishes passes `publish_until`, the store itself moves expired
 * keys to removed (one idempotent UPDATE; any instance may do it), erasing their private parts from
 * the database's files (erasure.ts), and reloads. This needs no query
 * of its own, since the store already knows the dates, and no separate job.
 *
 * A background reload that fails (database away, a key that does not decrypt) is logged and the
 * previous set stays in use; only the initial load throws. One in flight when the store closes (a
 * stop, whose closing of the database cuts it) is logged at `debug` only, with `stopped: true`.
 *
 * Non-active keys carry `key_ops: ['verify']`, so oidc-provider can never pick them for signing
 * whatever its selection order; the active key comes first and carries no restriction.
 */
export async function createKeyStore(
  database: KeyDatabase,
  config: Pick<Config, 'secretKey' | 'keys'>,
  logger: Logger,
  options: KeyStoreOptions = {},
): Promise<KeyStore> {
  const { db } = database;
  const log = logger.child({ component: 'keys' });
  const encryptionKey = deriveKeyEncryptionKey(config.secretKey);
  const now = options.now ?? Date.now;
  const parsed = new Map<string, ParsedKey>();
  const listeners = new Set<() => void>();

  let keys: LoadedSigningKey[] = [];
  let signature = '';
  let fingerprint: string | undefined;
  let currentVersion = 0;
  let closed = false;
  let lastError: string | undefined;
  let lastRemovalError: string | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  const parse = async (row: SigningKeyRow): Promise<ParsedKey> => {
    const cached = parsed.get(row.kid);
    if (cached) return cached;
    const entry = await loadPrivateKey(row, encryptionKey);
    parsed.set(row.kid, entry);
    return entry;
  };

  const build = async (rows: SigningKeyRow[]): Promise<LoadedSigningKey[]> => {
    const loaded: LoadedSigningKey[] = [];
    for (const row of rows) {
      if (row.status === 'removed') continue;
      const { privateJwk, privateKey } = await parse(row);
      const restriction = row.status === 'active' ? {} : { key_ops: ['verify'] };
      const members = { use: 'sig', ...restriction, kid: row.kid, alg: SIGNING_ALG };
      const publicJwk = JSON.parse(row.public_jwk) as JWK;
      loaded.push({
        kid: row.kid,
        alg: SIGNING_ALG,
        status: row.status,
        privateJwk: { ...privateJwk, ...members },
        publicJwk: { kty: 'RSA', ...members, e: publicJwk.e, n: publicJwk.n },
        privateKey,
        publishUntil: row.publish_until === null ? null : Number(row.publish_until),
      });
    }
    // Active first (oidc-provider signs with the first usable key), then next, then retired, newest first.
    return loaded.sort(
      (a, b) =>
        STATUS_ORDER[a.status] - STATUS_ORDER[b.status] ||
        (b.publishUntil ?? 0) - (a.publishUntil ?? 0) ||
        a.kid.localeCompare(b.kid),
    );
  };

  const load = async (): Promise<boolean> => {
    if (closed) return false;
    const expired = keys.some(
      (key) => key.status === 'retired' && key.publishUntil !== null && key.publishUntil <= now(),
    );
    if (expired) {
      // A failed clean-up (e.g. a read-only database) must not stop this instance from seeing rotations.
      try {
        const removed = await erasingKeyWrite(
          database,
          (trx) => removeExpiredKeys(trx, now()),
          (kids) => kids.length > 0,
          log,
        );
        if (removed.length > 0) log.info({ removedKids: removed }, 'removed expired signing keys');
        lastRemovalError = undefined;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // Closed meanwhile: the clean-up was cut by the stop (its pool closed), not a fault. Once per
        // distinct failure otherwise.
        if (closed || message !== lastRemovalError)
          logFailure(
            log,
            { level: 'warn', stopped: closed },
            { err: message },
            'removing expired signing keys failed',
            'removing expired signing keys ended with the stop',
          );
        lastRemovalError = message;
      }
    }
    const seen = await keySetFingerprint(db);
    if (seen === fingerprint) return false;
    const loaded = await build(await publishedKeyRows(db));
    fingerprint = seen;
    for (const kid of parsed.keys()) if (!loaded.some((key) => key.kid === kid)) parsed.delete(kid);
    const nextSignature = loaded.map((key) => `${key.kid}:${key.status}:${key.publishUntil}`).join(',');
    if (nextSignature === signature) return false;
    const previousActive = keys.find((key) => key.status === 'active')?.kid;
    keys = loaded;
    signature = nextSignature;
    currentVersion += 1;
    const active = keys.find((key) => key.status === 'active')?.kid;
    if (active === undefined) {
      if (options.warnWithoutActiveKey ?? true) log.warn('no active signing key in the database');
    } else if (active !== previousActive)
      log.info({ activeKid: active, keys: keys.length, version: currentVersion }, 'loaded signing keys');
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        log.error({ err: error }, 'a signing-key change listener failed');
      }
    }
    return true;
  };

  const reload = (): Promise<boolean> => {
    const run = queue.then(load);
    queue = run.catch(() => undefined);
    return run;
  };

  if (options.initialLoad ?? true) await reload();

  const reloadInBackground = () => {
    reload().then(
      () => {
        lastError = undefined;
      },
      (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        // A reload in flight when the store closed fails with the stop (the database's connections
        // closed under it): that is the stop's doing, and the process no longer signs. Otherwise once
        // per distinct failure, not every few seconds.
        if (closed || message !== lastError)
          logFailure(
            log,
            { level: 'error', stopped: closed },
            { err: message },
            'reloading signing keys failed; keeping the loaded set',
            'reloading signing keys ended with the stop',
          );
        lastError = message;
      },
    );
  };
  const timer =
    (options.watch ?? true)
      ? setInterval(reloadInBackground, options.reloadIntervalMs ?? config.keys.reloadIntervalMs)
      : undefined;
  timer?.unref();

  const activeKey = (): LoadedSigningKey => {
    const active = keys.find((key) => key.status === 'active');
    if (!active) {
      throw new Error(
        'no active signing key is loaded: apply migrations (`aa-oidc migrate`) and start the server, which creates one, or run `aa-oidc keys rotate`',
      );
    }
    return active;
  };

  return {
    signingJwks: () => ({ keys: keys.map((key) => structuredClone(key.privateJwk)) }),
    publicJwks: () => ({ keys: keys.map((key) => structuredClone(key.publicJwk)) }),
    activeKid: () => activeKey().kid,
    activeKey,
    loadedKeys: () => [...keys],
    version: () => currentVersion,
    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    reload,
    close() {
      closed = true;
      clearInterval(timer);
      listeners.clear();
    },
  };
}

/** Decrypts and parses a published key's private part; throws `KeyDecryptionError` naming why not. */
async function loadPrivateKey(row: SigningKeyRow, encryptionKey: Buffer): Promise<ParsedKey> {
  if (row.private_jwk_encrypted === null) {
    throw new KeyDecryptionError(
      row.kid,
      `signing key ${row.kid} is ${row.status} but has no private part (database integrity)`,
    );
  }
  const privateJwk = decryptPrivateJwk(row.private_jwk_encrypted, row.kid, encryptionKey);
  const privateKey = await importPrivateJwk(privateJwk, row.kid, JSON.parse(row.public_jwk) as JWK);
  return { privateJwk, privateKey };
}

/**
 * The published keys whose private part this configuration's AA_OIDC_SECRET_KEY cannot load, as the
 * key store's start-up load would (so `serve` and `worker` refuse to start): `aa-oidc check` reports
 * them (E013) where the store would stop at the first. Every key is tried; nothing is kept.
 */
export async function unloadableSigningKeys(
  db: Kysely<Database>,
  config: Pick<Config, 'secretKey'>,
): Promise<UnloadableSigningKey[]> {
  const encryptionKey = deriveKeyEncryptionKey(config.secretKey);
  const unloadable: UnloadableSigningKey[] = [];
  for (const row of await publishedKeyRows(db)) {
    if (row.status === 'removed') continue;
    try {
      await loadPrivateKey(row, encryptionKey);
    } catch (error) {
      const known = error instanceof KeyDecryptionError;
      unloadable.push({
        kid: row.kid,
        status: row.status,
        problem: known ? error.problem : 'damaged',
        reason: known ? error.message : `signing key ${row.kid}: ${String(error)}`,
      });
    }
  }
  return unloadable.sort(
    (a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || a.kid.localeCompare(b.kid),
  );
}
