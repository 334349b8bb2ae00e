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
  /** The active key's kid. */
  activeKid(): string;
  /** Monotonic number that changes whenever the loaded set changes. */
  version(): number;
  /** Called after a reload changed the set (e.g. to rebuild the provider). */
  onChange(listener: () => void): () => void;
  /** Loads from the database now (also done on a timer). */
  reload(): Promise<boolean>;
  close(): void;
}
