/**
 * The audit events: one discriminated union, each member with its exact body.
 *
 * Field names are snake_case because these objects are written as they are to the log and the
 * JSON-lines sink. No member carries a token, code, secret or password: tokens and codes appear only
 * as `sha256Hex` digests (`token_sha256`, `code_hash`), ids only where they are not the secret itself
 * (oidc-provider's opaque token id *is* the token, so such ids are digests too); with masks enabled
 * (development only), the log's and the JSON-lines sink's records add head/tail fragments beside the
 * digests (`AuditRecord`'s `token_masked`, `code_masked`), never the events. Users appear by
 * numeric id (and username for admin changes), never by e-mail or other personal data.
 */

import { AUDIT_EVENT_KIND_NAMES } from '../config/schema.ts';
import type { DenyReason } from '../policy/decide.ts';
import type { PolicyStage } from '../policy/stages.ts';

export type TokenType = 'access_token' | 'refresh_token' | 'id_token';
export type TokenFormat = 'opaque' | 'jwt';

/** Why a token stopped being valid before its expiry. */
export type TokenRevocationReason =
  /** RFC 7009 revocation endpoint, called by the client. */
  | 'revocation_endpoint'
  /** Authorization-code reuse: the authorization code that produced it was presented again. */
  | 'code_reuse'
  /** `aa-oidc tokens revoke-user` or the admin UI. */
  | 'user_revoked'
  | 'user_deactivated'
  | 'user_deleted'
  /**
   * The policy denies this application now: a state or group change of the user, or a narrower
   * whitelist of the application (`aa-oidc app update`, the admin UI's edit).
   */
  | 'policy_lost'
  /** RP-initiated or back-channel logout ended the session the token belonged to. */
  | 'logout'
  /** The application was disabled or deleted, or its secret rotated with revocation. */
  | 'application_changed'
  /** oidc-provider rotated a refresh token; the previous one is consumed. */
  | 'refresh_rotation';

/** What triggers a back-channel logout. */
export type LogoutReason =
  | 'rp_initiated'
  | 'user_revoked'
  | 'user_deactivated'
  | 'state_changed'
  | 'groups_changed'
  /** The application's whitelists changed so that they no longer admit the user. */
  | 'whitelist_changed'
  /**
   * The application was activated and no longer admits the user (who lost it while it was
   * deactivated: a deactivated application hears of no state or group change).
   */
  | 'application_activated'
  | 'user_deleted'
  /** A new password ended the user's sessions (but the one it was changed in, on the account page). */
  | 'password_changed'
  | 'admin_test';

/** The delivery outcomes of a back-channel logout. */
export type LogoutDeliveryOutcome =
  | 'success'
  | 'redirect_blocked'
  | 'rp_client_error'
  | 'retries_exhausted'
  | 'signing_kid_retired'
  | 'dns_resolve_failed'
  | 'unsafe_target_ip';

/** Why a user's browser sessions were ended. */
export type SessionsEndedReason =
  /** `aa-oidc user sign-out` or the admin UI's "sign out everywhere". */
  | 'signed_out'
  /** `aa-oidc tokens revoke-user` or the admin UI's revoke. */
  | 'user_revoked'
  /** A new password (the session that changed it, on the account page, stays). */
  | 'password_changed'
  | 'user_deactivated'
  | 'user_deleted';

/** `directory`: the directory this database's user ids belong to (`aa-oidc directory rebind`). */
export type AdminEntity = 'application' | 'user' | 'state' | 'group' | 'signing_key' | 'directory';

export type AdminAction =
  | 'created'
  | 'updated'
  | 'deleted'
  | 'activated'
  | 'deactivated'
  | 'group_added'
  | 'group_removed'
  | 'state_changed'
  | 'password_changed'
  | 'secret_rotated'
  | 'two_factor_enabled'
  | 'two_factor_disabled'
  /** A signing key activated by `aa-oidc keys rotate` (the active one retired, a next key made). */
  | 'rotated'
  /** A next signing key published by `aa-oidc keys prepare-next`. */
  | 'prepared'
  /** A next signing key retired by `aa-oidc keys retire`. */
  | 'retired'
  /** A signing key brought in by `aa-oidc keys import`. */
  | 'imported'
  /** A signing key taken out of JWKS at once (`aa-oidc keys withdraw`: its private part may have leaked). */
  | 'withdrawn'
  /** The database bound to another directory by `aa-oidc directory rebind`. */
  | 'rebound';

/** A scalar detail of an admin change; never a password or a secret, only what changed to what. */
export type AdminChangeDetail = string | number | boolean | null;

export interface TokenIssuedEvent {
  kind: 'token_issued';
  client_id: string;
  /** Null for `client_credentials`. */
  user_id: number | null;
  grant_type: string;
  token_type: TokenType;
  format: TokenFormat;
  token_sha256: string;
  /** Epoch milliseconds. */
  expires_at: number;
}

export interface TokenRevokedEvent {
  kind: 'token_revoked';
  client_id: string;
  user_id: number | null;
  token_type: TokenType;
  token_sha256: string;
  reason: TokenRevocationReason;
  /** The operator's own words (`aa-oidc tokens revoke-user --reason TEXT`), when given. */
  note?: string;
}

/** Code reuse: a used authorization code was presented again and what it produced was revoked. */
export interface CodeReuseDetectedEvent {
  kind: 'code_reuse_detected';
  client_id: string;
  /** sha256 of the code, as stored in the issued-code audit row. */
  code_hash: string;
  /** Ids as stored in the issued-code audit row (digests for opaque tokens); null if none was issued. */
  access_token_id: string | null;
  refresh_token_id: string | null;
  reuse_count: number;
  revoke_succeeded: boolean;
}

export interface TokenIntrospectedEvent {
  kind: 'token_introspected';
  /** Client id of the caller of the introspection endpoint. */
  introspector: string;
  token_sha256: string;
  active: boolean;
  /** The client the token was issued to; null when the token is unknown. */
  client_id: string | null;
}

/** A back-channel logout job was queued for one application (one per target of the fan-out). */
export interface LogoutRequiredEvent {
  kind: 'logout_required';
  /** Null only for the `admin_test` no-op subject. */
  user_id: number | null;
  client_id: string;
  reason: LogoutReason;
  /** The `jti` of the logout token the job will deliver. */
  jti: string;
  /** True when the token will carry a `sid`. */
  with_sid: boolean;
}

/** A back-channel logout reached its final outcome (after retries, if any). */
export interface LogoutDispatchedEvent {
  kind: 'logout_dispatched';
  user_id: number | null;
  client_id: string;
  jti: string;
  outcome: LogoutDeliveryOutcome;
  attempts: number;
  /** The last HTTP status received, null when none was (network, DNS, SSRF gate). */
  http_status: number | null;
  /** Milliseconds from the first attempt to the outcome. */
  duration_ms: number;
}

/**
 * The access policy refused a request at one of its stages. For operators only: what
 * the refused user or client sees never names the application on a global deny.
 */
export interface PolicyDeniedEvent {
  kind: 'policy_denied';
  /** The application asked for; null when no such application exists (reason `no_client`). */
  client_id: string | null;
  /** Null when no user was involved (`client_credentials`, a client refused before any user). */
  user_id: number | null;
  /** `authorize`, `validate_silent_auth`, `validate_code`, `validate_refresh`, `validate_bearer`, `save_bearer`. */
  stage: PolicyStage;
  /** `global`, `app`, `app_unusable` or `no_client`. */
  reason: DenyReason;
  /**
   * On the event that stands for identical refusals not published each on its own (a caller
   * repeating a request refused without any credential, src/oidc/denial-coalescing.ts): how many
   * followed the last event of the same stage, reason, application and user within the window.
   */
  repeated?: number;
}

/** An operator changed an application, user, state, group or signing key (CLI, admin UI, or the directory). */
export interface AdminChangeEvent {
  kind: 'admin_change';
  entity: AdminEntity;
  action: AdminAction;
  /** The entity's id (client id for applications, kid for signing keys, numeric id otherwise). */
  entity_id: string | number;
  /** Username, state, group or application name at the time of the change (a signing key's kid). */
  name: string;
  /** Who made the change (`cli`, `admin:<username>`, `system`), or null when the source did not say. */
  actor: string | null;
  /** Names of the fields that changed (`password` may appear; its value never does). */
  changed_fields: string[];
  /** Scalar before/after values worth keeping (`from_state`, `to_state`, `group`, `oidc_access`, …). */
  details: Record<string, AdminChangeDetail>;
}

/**
 * A user's provider (browser) sessions were ended: their cookies meet the login page again. Says how
 * many, never which (no session id, no cookie).
 */
export interface SessionsEndedEvent {
  kind: 'sessions_ended';
  user_id: number;
  /** Who caused it (`cli:<os user>`, `admin:<username>`, `self:<username>`), or null when the source did not say. */
  actor: string | null;
  count: number;
  reason: SessionsEndedReason;
}

/**
 * A refused second-factor code at sign-in, after a right first factor (a password, or EVE): that
 * factor has most likely leaked, whoever typed the code; or on the account page, from a signed-in
 * session, to turn two-factor sign-in off. Never the code, nor a digest of it (a six-digit code's
 * digest is no secret: a million guesses undo it).
 */
export interface TwoFactorFailedEvent {
  kind: 'two_factor_failed';
  /** The user asked for the code (the actor, whoever they are: they passed as this user's first factor). */
  user_id: number;
  /** The application the sign-in is for. */
  client_id: string;
  /** What the wrong code was given as, by its shape: six digits from the app, or a recovery code. */
  code_kind: 'totp' | 'recovery_code';
  /**
   * `wrong`: no code of the user's. `replayed`: a right code used already (the app's code of a step
   * at or before the one last accepted, used or not, or a used recovery code): the losing half of a
   * form sent twice, a code that lost the race to a later one, or someone who saw the code typed. Absent from events kept before aa-oidc told them apart (read as `wrong`).
   */
  reason: 'wrong' | 'replayed';
  /**
   * Where: `sign_in`, the sign-in's code step; `account_page`, the form that turns two-factor sign-in
   * off (`client_id` is then the account console's). Absent from events kept before (`sign_in`).
   */
  at: 'sign_in' | 'account_page';
  /**
   * The first factor that passed (`amr` values: `pwd`, `eve_sso`); on the account page, how its
   * session signed in (`otp` too when with a code).
   */
  first_factor: string[];
  /** The client's address, as the login throttle reads it (`X-Forwarded-For` behind a trusted proxy). */
  address: string;
}

export type AuditEvent =
  | TokenIssuedEvent
  | TokenRevokedEvent
  | CodeReuseDetectedEvent
  | TokenIntrospectedEvent
  | LogoutRequiredEvent
  | LogoutDispatchedEvent
  | PolicyDeniedEvent
  | AdminChangeEvent
  | SessionsEndedEvent
  | TwoFactorFailedEvent;

export type AuditEventKind = AuditEvent['kind'];

/**
 * A list of kinds, when it names every kind of the union; `never` when one is missing (a name the
 * union lacks fails the assignment itself).
 */
type EveryKind<Names> = [AuditEventKind] extends [Names] ? readonly AuditEventKind[] : never;

/** Every kind: the configuration's list (`audit.databaseExclude` takes them), checked against the union. */
export const AUDIT_EVENT_KINDS: EveryKind<(typeof AUDIT_EVENT_KIND_NAMES)[number]> = AUDIT_EVENT_KIND_NAMES;

/** An event as receivers get it: stamped with the time of publication and, inside a request, its id. */
export type AuditRecord = AuditEvent & {
  /** ISO 8601 time of `publish()`. */
  time: string;
  request_id?: string;
  /**
   * `abcd…wxyz`: head and tail of the value `token_sha256` digests, in the log's and the JSON-lines
   * sink's records only, when masks are enabled (`PublishContext.masked`, src/audit/bus.ts).
   */
  token_masked?: string;
  /** The same of the code `code_hash` digests (`code_reuse_detected`). */
  code_masked?: string;
};
