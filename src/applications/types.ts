import type { ApplicationError } from './errors.ts';
import type { Consequence, UnitOfWork } from '../db/unit-of-work.ts';
import type { ChangeConsumer } from '../directory/port.ts';

export type ClientType = 'confidential' | 'public';
export type AccessTokenFormatSetting = 'inherit' | 'opaque' | 'jwt';
export type GrantType = 'authorization_code' | 'refresh_token' | 'client_credentials';

/** An application (OIDC client) as read from our tables; whitelists resolved to names. */
export interface Application {
  clientId: string;
  /** SHA-256 digest (hex) of the client secret; null for public clients. Never the secret itself. */
  clientSecretSha256: string | null;
  /**
   * A secret imported from the Python plugin as django-oauth-toolkit stored it (a Django PBKDF2
   * hash), until the first successful authentication replaces it with `clientSecretSha256` (which
   * meanwhile is the digest of a random value, so that only this hash can match).
   */
  clientSecretPbkdf2: string | null;
  name: string;
  logoUrl: string | null;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  clientType: ClientType;
  grantTypes: GrantType[];
  skipAuthorization: boolean;
  /** Whitelisted state names (empty with empty `groups` = open to everyone past the global gate). */
  states: string[];
  /** Whitelisted group names. */
  groups: string[];
  active: boolean;
  debugMode: boolean;
  pkceRequired: boolean;
  accessTokenFormat: AccessTokenFormatSetting;
  backchannelLogoutUri: string | null;
  backchannelLogoutOnRevokeOnly: boolean;
  /**
   * Its id_tokens also carry the claims of the granted scopes (email, groups, preferred_username, …),
   * for relying parties that read them only there; otherwise the id_token holds the protocol claims
   * (and what the claims parameter asks for) and the rest comes from userinfo.
   */
  idTokenClaims: boolean;
  createdBy: string | null;
  createdAt: number;
  updatedAt: number;
}

export const CLIENT_TYPES: readonly ClientType[] = ['confidential', 'public'];
export const ACCESS_TOKEN_FORMAT_SETTINGS: readonly AccessTokenFormatSetting[] = ['inherit', 'opaque', 'jwt'];
export const GRANT_TYPES: readonly GrantType[] = [
  'authorization_code',
  'refresh_token',
  'client_credentials',
];
/** What a new application gets when no grant types are given. */
export const DEFAULT_GRANT_TYPES: readonly GrantType[] = ['authorization_code', 'refresh_token'];

/**
 * What a caller (CLI, admin UI, admin API, seed/import) asks to create. Everything but `name` has a
 * default. Values are checked at run time too: this often comes from untrusted JSON.
 */
export interface ApplicationInput {
  /** An explicit client_id (URL-safe); generated (32 characters) when absent. */
  clientId?: string;
  name: string;
  logoUrl?: string | null;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  /** Default `confidential`. Fixed once created. */
  clientType?: ClientType;
  /** Default `authorization_code` + `refresh_token`. */
  grantTypes?: GrantType[];
  skipAuthorization?: boolean;
  /** Whitelisted state names; each must exist. */
  states?: string[];
  /** Whitelisted group names; each must exist. */
  groups?: string[];
  /** Default true. */
  active?: boolean;
  debugMode?: boolean;
  /** Default true; must stay true for public clients. */
  pkceRequired?: boolean;
  /** Default `inherit`. */
  accessTokenFormat?: AccessTokenFormatSetting;
  backchannelLogoutUri?: string | null;
  backchannelLogoutOnRevokeOnly?: boolean;
  /** Default false: the id_token stays minimal. */
  idTokenClaims?: boolean;
}

/** A change to an existing application: absent fields stay as they are; lists are replaced whole. */
export type ApplicationPatch = Partial<Omit<ApplicationInput, 'clientId' | 'clientType'>>;

/** The result of the SSRF gate for a back-channel logout URI. */
export type BackchannelTargetVerdict = { ok: true } | { ok: false; reason: string };

/**
 * Judges a back-channel logout URI before it is stored. Back-channel logout supplies the full gate (DNS,
 * address classes); the default in this module is only the syntactic part.
 */
export type BackchannelTargetCheck = (uri: string) => Promise<BackchannelTargetVerdict>;

/** Who made a change (`cli:alice`, `admin:bob`, `seed`); stored as `created_by`, given to listeners. */
export type Actor = string;

export type ApplicationChangeAction = 'created' | 'updated' | 'secret_rotated' | 'deactivated' | 'activated';

export interface ApplicationChange {
  clientId: string;
  /** The application's name after the change. */
  name: string;
  action: ApplicationChangeAction;
  actor: Actor;
  /** For `updated`: the spec field names that changed (snake_case). */
  fields?: string[];
}

/** Called after the change committed (audit log, provider caches). A throwing listener is logged and ignored. */
export type ApplicationChangeListener = (change: ApplicationChange) => void;

export interface ApplicationFilter {
  active?: boolean;
  /** Case-insensitive substring of the name or the client_id. */
  search?: string;
}

export interface WriteOptions {
  /** Validate and compute the result, write nothing, notify nobody. */
  dryRun?: boolean;
}

export interface RotateSecretOptions extends WriteOptions {
  /**
   * The `secretFingerprint` of the secret the caller saw (the admin console's confirmation page):
   * the rotation is refused when the stored secret is another one by now (a form sent twice, or
   * from a page shown before another rotation).
   */
  expectedFingerprint?: string;
}

export interface UpdateOptions extends WriteOptions {
  /**
   * Collects what the update causes beyond the application itself (users who lose it, queued
   * back-channel logouts, revoked codes and tokens), a dry run's too: see `UnitOfWork.report`.
   */
  consequences?: Consequence[];
  /**
   * The application's `updatedAt` as the caller showed it (the admin console's edit form, which
   * sends every field back): when it was changed since, the update is refused (`conflict`, nothing
   * written), so that values shown before another operator's change do not silently undo it (a
   * state taken out of the whitelists put back). Absent (`aa-oidc app update`, which sends only
   * the fields it names), the update applies to the application as it is when written.
   */
  expectedVersion?: number;
}

/**
 * A change that may leave an application admitting fewer users (new whitelists, or the application
 * activated): the application on each side of it.
 */
export interface WhitelistChange {
  before: Application;
  after: Application;
}

/**
 * What an update that changed the whitelists (or an activation) runs: `prepare` before its unit of
 * work opens (reads that need no lock, such as a remote directory's profiles, so that the unit's
 * write lock is not held across them; a throw refuses the change), then `inUnit` inside it with what
 * `prepare` read, after the application was written and before it commits: its writes commit with it
 * (or roll back, a dry run's always), its notifications belong in `unit.afterCommit`, and a throw
 * refuses the change.
 */
export interface WhitelistChangeConsumer<Prepared = unknown> {
  prepare(change: WhitelistChange): Promise<Prepared>;
  inUnit(change: WhitelistChange, unit: UnitOfWork, prepared: Prepared): Promise<void>;
}

/**
 * A secret that already exists elsewhere (`aa-oidc import plugin-apps`): its SHA-256 digest, or the
 * Django PBKDF2 hash django-oauth-toolkit kept. The application then keeps it instead of a new one.
 */
export type ImportedSecret = { sha256Hex: string } | { djangoPbkdf2: string };

/** What `verifyImportedSecret` compared a presented secret with, and whether it matched. */
export type ImportedSecretCheck =
  /** The imported hash: one PBKDF2 run. A match replaced the hash by the digest. */
  | { against: 'hash'; matches: boolean }
  /** The current digest (the hash was gone): no PBKDF2 run. */
  | { against: 'digest'; matches: boolean }
  /**
   * Nothing: the hash asks for more PBKDF2 iterations than aa-oidc runs for a client secret
   * (`IMPORTED_SECRET_MAX_ITERATIONS`), so no presented secret can match until it is rotated.
   */
  | { against: 'too_costly'; matches: false; iterations: number }
  /** Nothing: no such application, or no secret a client could send (empty, too long). */
  | { against: 'none'; matches: false };

export interface CreateOptions extends WriteOptions {
  /** Only for a confidential client; no secret is generated (nor returned). */
  importedSecret?: ImportedSecret;
}

export interface CreatedApplication {
  application: Application;
  /** The plain secret, shown once; null for public clients (and in a dry run). */
  clientSecret: string | null;
}

export interface UpdatedApplication {
  application: Application;
  /** Spec field names (snake_case) whose value changed. */
  changedFields: string[];
}

/** The one write path for applications. Every method validates; errors are `ApplicationError`. */
export interface ApplicationService {
  create(input: ApplicationInput, actor: Actor, options?: CreateOptions): Promise<CreatedApplication>;
  /**
   * Whitelists changed: the consumers (`onWhitelistChange`) run in the update's unit of work, a dry
   * run's too (then rolled back), and report what they would do to `options.consequences`.
   */
  update(
    clientId: string,
    patch: ApplicationPatch,
    actor: Actor,
    options?: UpdateOptions,
  ): Promise<UpdatedApplication>;
  /**
   * A new secret for a confidential client; the old one stops working at once. A compare-and-swap on
   * the secret read: when another rotation wins meanwhile (or the secret is no longer the one
   * `expectedFingerprint` names), nothing is written and a `conflict` error names when it changed, so
   * that no caller is ever handed a secret that is not the live one.
   */
  rotateSecret(
    clientId: string,
    actor: Actor,
    options?: RotateSecretOptions,
  ): Promise<{ clientSecret: string | null }>;
  deactivate(clientId: string, actor: Actor, options?: WriteOptions): Promise<Application>;
  /**
   * Activated, the application admits again whoever its whitelists admit now: the consumers
   * (`onWhitelistChange`) run in its unit of work as for new whitelists, a dry run's too.
   */
  activate(clientId: string, actor: Actor, options?: UpdateOptions): Promise<Application>;
  /**
   * Client authentication of an application whose client was loaded with a secret imported as a
   * Django PBKDF2 hash: one PBKDF2 run against the hash as stored now; on a match the hash is
   * replaced by the presented secret's SHA-256 digest, so that every later authentication is the
   * usual fast comparison. When the hash is gone by then (a concurrent first success replaced it, or
   * the secret was rotated), the current digest is compared instead, without PBKDF2. Callers bound
   * how many run at once (src/oidc/imported-secret-gate.ts).
   */
  verifyImportedSecret(clientId: string, presented: unknown): Promise<ImportedSecretCheck>;
  /** One database round trip; undefined for an unknown (or malformed) client_id. */
  findByClientId(clientId: string): Promise<Application | undefined>;
  /**
   * The `not_found` error for a client_id no application has, naming the one it differs from only in
   * look-alike letters (`wіki`, its `і` Cyrillic, for `wiki`), if one does.
   */
  unknownClientId(clientId: string): Promise<ApplicationError>;
  /** Sorted by name, then client_id. */
  list(filter?: ApplicationFilter): Promise<Application[]>;
  /** Subscribes to committed changes; returns the unsubscribe function. */
  onChange(listener: ApplicationChangeListener): () => void;
  /**
   * Adds a consumer of whitelist changes and activations, run in the change's own unit of work (the
   * users the application no longer admits lose it there); returns the function that removes it.
   */
  onWhitelistChange(consumer: WhitelistChangeConsumer): () => void;
  /**
   * For the directory's change feed: whitelists follow a renamed state or group, and a whitelisted
   * one cannot be deleted (the deletion is refused with a message naming the applications).
   */
  onDirectoryChange: ChangeConsumer;
}
