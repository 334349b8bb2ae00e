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
  /** When an operator withdrew it (`KeyService.withdraw()`): removed at once; null otherwise. */
  withdrawnAt: number | null;
  /** A retired key stays published in JWKS until then; null for next and active keys. */
  publishUntil: number | null;
  /** The RSA modulus size, from the public key (the system checks compare it with import's bounds). */
  modulusBits: number;
  /** The RSA public exponent, from the public key. */
  publicExponent: bigint;
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

/**
 * A published key whose private part this process cannot load (`unloadableSigningKeys`): the key
 * store's start-up load, so `serve` and `worker`, would fail on it. Names no private material.
 */
export interface UnloadableSigningKey {
  kid: string;
  status: Exclude<SigningKeyStatus, 'removed'>;
  /** `secret_key`: AA_OIDC_SECRET_KEY is not the one it was encrypted with; `damaged`: its row is. */
  problem: 'secret_key' | 'damaged';
  /** Why, naming the kid (`KeyDecryptionError`'s message). */
  reason: string;
}

/**
 * The one write path for signing keys: `next → active → retired → removed`.
 *
 * - Every write runs in a transaction that first takes a writers' lock on the table and re-reads the
 *   state, so two instances starting at once, or a rotation racing another, never leave two active
 *   keys (partial unique indexes back this up).
 * - `rotate()` also generates a fresh `next` key. It is published in JWKS at once but signs nothing
 *   until the following rotation, so relying parties that cache JWKS already hold it when it becomes
 *   active. (On first run `ensureActiveKey()` creates the active key and a next key likewise.) While
 *   an active key signs, `rotate()` refuses, unless forced, to activate a key relying parties may not
 *   have fetched yet: a next key published less than `keys.jwksCacheSeconds` (plus
 *   `keys.reloadIntervalMs`) ago, or a new key when there is no next key (after `retire()`:
 *   `prepareNext()` publishes a new one without activating anything).
 * - Expired retired keys are removed by `rotate()`, `retire()` and `prepareNext()` (and when `ensureActiveKey()`
 *   creates a key), and by every key store as soon as a key it publishes passes its `publish_until`
 *   (see store.ts); no separate job is needed.
 * - `withdraw()` is the emergency exit, for a key whose private part may have leaked: any published
 *   key goes straight to removed (the active one replaced as in a rotation), and every key store
 *   drops it at its next reload, so nothing it signed verifies any more.
 * - RSA keys are generated before the transaction opens (it takes ~100 ms), so the lock is short.
 * - Every committed change is told to the service's listener (`KeyChange`) with the `actor` the
 *   caller passed: the composition root makes it an audit event.
 */
export interface KeyService {
  /** Makes sure an active key exists (first run: generates one, plus a next key); returns it. */
  ensureActiveKey(): Promise<SigningKeySummary>;
  /** Every key, removed ones included: active first, then next, retired, removed; newest first. */
  list(): Promise<SigningKeySummary[]>;
  /**
   * Activates the next key (or a new one), retires the active one, and prepares a new next key. With
   * `expect` (the kids a preview showed), refused with `keys_changed` when the active or next key is
   * another by now (another rotation or an import came first): what was confirmed is what happens,
   * and a confirmation sent twice does not activate the next key prepared a moment before. Refused
   * with `unpublished_key` while the key it would activate is one relying parties may not know yet
   * (`RotationResult.unpublished`), unless `force`; a dry run reports it instead.
   */
  rotate(options?: {
    dryRun?: boolean;
    expect?: ExpectedKeys;
    force?: boolean;
    actor?: string;
  }): Promise<RotationResult>;
  /**
   * Generates a next key and publishes it at once, activating nothing: after `retire()` of the next
   * key, so that a later rotation activates a key relying parties caching the JWKS already hold
   * instead of one they meet only when it signs (which `rotate()` refuses unless forced). Refused
   * with `next_key_exists` when there is a next key already (retire it first to replace it).
   */
  prepareNext(options?: { dryRun?: boolean; actor?: string }): Promise<PrepareNextResult>;
  /**
   * Retires a next key. The active key is refused (it would leave nothing to sign with): rotate
   * instead, which retires it and activates another in one step.
   */
  retire(kid: string, options?: { dryRun?: boolean; actor?: string }): Promise<RetireResult>;
  /**
   * Withdraws a key whose private part may have leaked: it leaves JWKS and every key store's set at
   * once (instead of when its publication ends), its private part is erased, and the key becomes
   * `removed` with `withdrawnAt` set. Tokens it signed stop verifying wherever the JWKS is fetched
   * afresh, at aa-oidc itself too (an `id_token_hint` it signed is refused). The active key is
   * replaced as in a rotation, in the same transaction: the next key (or a new one) signs from now
   * on and a new next key is prepared; refused with `unpublished_key` when relying parties may not
   * know the key activated (`WithdrawResult.unpublished`), unless `force`. Refused with
   * `already_removed` for a removed key (withdrawn or expired: not published, nothing to withdraw).
   * With `expect` (the key's status and the active and next keys a preview showed,
   * `WithdrawResult.shown`), refused with `keys_changed` when any is another by now (a rotation,
   * withdrawal or import came first): what was confirmed is what happens.
   */
  withdraw(
    kid: string,
    options?: { dryRun?: boolean; expect?: ExpectedWithdrawal; force?: boolean; actor?: string },
  ): Promise<WithdrawResult>;
  /** Moves retired keys whose `publish_until` has passed to removed; returns their kids. */
  removeExpired(now?: number): Promise<string[]>;
  /** Seconds a key retired now stays published: the longest token lifetime, or more if configured. */
  retiredPublicationSeconds(): number;
  /** Seconds relying parties may keep a copy of the JWKS (`keys.jwksCacheSeconds`). */
  jwksCacheSeconds(): number;
  /**
   * Imports an RSA private key (PEM, 2048 to 4096 bits, public exponent 65537), such as the Python
   * plugin's `OIDC_RSA_PRIVATE_KEY`, so that tokens it signed keep verifying. `active` (the default)
   * makes it the signing key at once, the current active key retiring as in a rotation (relying
   * parties know it only if they knew it before, from the plugin's JWKS); `retired` only publishes
   * it, for as long as a key retired now is published; `next` makes it the next key, published from
   * now on and activated by a later rotation (refused, as `prepareNext()`, when there is one already).
   * The key must sign verifiably: one RS256 signature made with its private part is checked with
   * its public part, so that a damaged key is refused before it signs anything.
   */
  importKey(
    pem: string,
    options?: { as?: 'active' | 'next' | 'retired'; dryRun?: boolean; actor?: string },
  ): Promise<ImportResult>;
}

/** The active and next keys a rotation was previewed with; null where there was none. */
export interface ExpectedKeys {
  activeKid: string | null;
  nextKid: string | null;
}

/** The state a withdrawal was previewed with: the key's status, and the active and next keys. */
export interface ExpectedWithdrawal extends ExpectedKeys {
  status: WithdrawResult['formerStatus'];
}

export interface ImportResult {
  dryRun: boolean;
  kid: string;
  status: 'active' | 'next' | 'retired';
  /** The formerly active key, now retired (importing as active); null otherwise. */
  retiredKid: string | null;
  publishUntil: number | null;
  /** Importing as next: from when `rotate()` activates it without being forced; null otherwise. */
  rotationSafeAt: number | null;
}

export interface PrepareNextResult {
  dryRun: boolean;
  /** The new next key; null in a dry run. */
  kid: string | null;
  /** From when `rotate()` activates it without being forced: once relying parties' copies hold it. */
  rotationSafeAt: number;
  /** Retired keys whose publication ended, removed on the way. */
  removedKids: string[];
}

export interface RotationResult {
  dryRun: boolean;
  /** The key active after the rotation; null in a dry run that would generate a new key. */
  activatedKid: string | null;
  /** True when the activated key is the former next key (already published). */
  promotedNext: boolean;
  /** The formerly active key, now retired; null when there was none. */
  retiredKid: string | null;
  /** Until when the retired key stays in JWKS. */
  retiredPublishUntil: number | null;
  /** The new next key; null in a dry run. */
  nextKid: string | null;
  /** Retired keys whose publication ended, removed as part of the rotation. */
  removedKids: string[];
  /**
   * Set when the key activated (or to be activated) is one relying parties may not know yet, so that
   * those holding a copy of the JWKS fetched earlier would reject the tokens it signs: such a
   * rotation is refused unless forced. Null when nothing holds the rotation back.
   */
  unpublished: UnpublishedKey | null;
}

export interface UnpublishedKey {
  /**
   * `recent_next_key`: published too recently; `no_next_key`: a new key would sign at once (prepare
   * a next key instead, `prepareNext()`).
   */
  reason: 'recent_next_key' | 'no_next_key';
  /** When the next key will have been published long enough; null when there is no next key. */
  safeAt: number | null;
  /** Says why, and from when (or how) the key can be activated without that risk. */
  message: string;
}

export interface WithdrawResult {
  dryRun: boolean;
  /** The key as it is after the withdrawal (in a dry run: as it would be). */
  key: SigningKeySummary;
  /** Its status before: a withdrawn active key is replaced by `activatedKid`. */
  formerStatus: 'next' | 'active' | 'retired';
  /** The state the withdrawal was made (or previewed) in: a confirmation passes it back as `expect`. */
  shown: ExpectedWithdrawal;
  /** Withdrawing the active key: the key that signs from now on; null in a dry run that would generate one, and otherwise. */
  activatedKid: string | null;
  /** True when the activated key is the former next key (already published). */
  promotedNext: boolean;
  /** Withdrawing the active key: the new next key; null in a dry run and otherwise. */
  nextKid: string | null;
  /** Retired keys whose publication ended, removed on the way. */
  removedKids: string[];
  /**
   * Withdrawing the active key: set when the key activated in its place is one relying parties may
   * not know yet (as for `rotate()`); such a withdrawal is refused unless forced.
   */
  unpublished: UnpublishedKey | null;
}

/**
 * What the key service tells its listener after every committed lifecycle change, one per
 * operation (services.ts makes each an `admin_change` audit event): the key it names (`kid`), who
 * made it (`actor`: `cli:<user>`, `admin:<name>`, `system` for the first key of a database; null
 * when the caller did not say) and the other keys it moved. Key ids only: JWKS publishes them; never
 * key material. Not told: dry runs, refusals, and the removal of retired keys whose publication
 * ended (planned when they were retired, and done by whichever key store or write comes first).
 */
export type KeyChange =
  KeyCreation | KeyRotation | KeyPreparation | KeyRetirement | KeyImport | KeyWithdrawal;

/** `ensureActiveKey()` found no active key (a database's first start) and made one, actor `system`. */
export interface KeyCreation {
  action: 'created';
  /** The key active now: the former next key, or a new one (`formerStatus` null). */
  kid: string;
  formerStatus: 'next' | null;
  /** The new next key. */
  nextKid: string;
  actor: string;
}

export interface KeyRotation {
  action: 'rotated';
  /** The key active now: the former next key, or a new one (`formerStatus` null). */
  kid: string;
  formerStatus: 'next' | null;
  /** The formerly active key, now retired; null when there was none. */
  retiredKid: string | null;
  /** The new next key. */
  nextKid: string;
  /** The `unpublished` reason a forced rotation overrode; null when nothing was forced. */
  forced: UnpublishedKey['reason'] | null;
  actor: string | null;
}

/** `prepareNext()`: a new next key. */
export interface KeyPreparation {
  action: 'prepared';
  kid: string;
  actor: string | null;
}

/** `retire()`: a next key retired. */
export interface KeyRetirement {
  action: 'retired';
  kid: string;
  actor: string | null;
}

export interface KeyImport {
  action: 'imported';
  kid: string;
  status: ImportResult['status'];
  /** Imported as active: the formerly active key, now retired; null otherwise. */
  retiredKid: string | null;
  actor: string | null;
}

export interface KeyWithdrawal {
  action: 'withdrawn';
  kid: string;
  formerStatus: WithdrawResult['formerStatus'];
  /** Withdrawing the active key: the key active in its place; null otherwise. */
  activatedKid: string | null;
  /** Withdrawing the active key: the new next key prepared with it; null otherwise. */
  nextKid: string | null;
  /** The `unpublished` reason a forced withdrawal overrode; null when nothing was forced. */
  forced: UnpublishedKey['reason'] | null;
  actor: string | null;
}

export interface RetireResult {
  dryRun: boolean;
  key: SigningKeySummary;
  removedKids: string[];
}
