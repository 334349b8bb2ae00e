import type { KeyObject } from 'node:crypto';
import type { JWK } from 'jose';

export type SigningKeyStatus = 'next' | 'active' | 'retired' | 'removed';

export interface SigningKeySummary {
  kid: string;
  alg: 'RS256';
  status: SigningKeyStatus;
  createdAt: number;
  activatedAt: number | null;
  retiredAt: number | null;
  removedAt: number | null;
  /** A retired key stays published in JWKS until then; null for next and active keys. */
  publishUntil: number | null;
}

/**
 * The signing keys as the running process sees them: decrypted and parsed once when loaded, reloaded
 * (within seconds) when another instance or the CLI rotates them. Never decrypts per request.
 */
export interface KeyStore {
  /** Private JWKs (with `kid`, `alg`, `use: 'sig'`), the active key first, then next and retired. */
  signingJwks(): { keys: JWK[] };
  /** Public JWKs of next, active and retired keys, as JWKS publishes them. */
  publicJwks(): { keys: JWK[] };
  /** The active key's kid. Throws when no key is loaded (database not migrated). */
  activeKid(): string;
  /** The active key, parsed, for code that signs outside oidc-provider (and for tests). */
  activeKey(): LoadedSigningKey;
  /** Every loaded key, in `signingJwks()` order (for listings and tests). */
  loadedKeys(): readonly LoadedSigningKey[];
  /** Monotonic number that changes whenever the loaded set changes. */
  version(): number;
  /** Called after a reload changed the set (e.g. to rebuild the provider). */
  onChange(listener: () => void): () => void;
  /** Loads from the database now (also done on a timer). */
  reload(): Promise<boolean>;
  close(): void;
}

/** One key as the store holds it: decrypted and parsed once, when it was first loaded. */
export interface LoadedSigningKey {
  kid: string;
  alg: 'RS256';
  status: Exclude<SigningKeyStatus, 'removed'>;
  /** The private JWK with kid, alg and use. */
  privateJwk: JWK;
  publicJwk: JWK;
  privateKey: KeyObject;
  publishUntil: number | null;
}
