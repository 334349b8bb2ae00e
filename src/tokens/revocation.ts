import type { Kysely, Transaction } from 'kysely';
import type { AuditBus } from '../audit/bus.ts';
import type { TokenRevocationReason, TokenType } from '../audit/events.ts';
import type { Database } from '../db/schema.ts';
import { isRowId } from '../db/row-id.ts';
import { lockSignInGeneration } from '../db/sign-in-generation.ts';
import type { ChangeConsumer, Directory } from '../directory/port.ts';
import {
  deleteGrantsOfUser,
  deleteUserGrants,
  endUserSessions,
  type LiveTokenSelection,
  revokeLiveTokenRows,
  selectUserSessions,
  TOKEN_MODELS,
  type TokenModel,
  type TokenRow,
} from './store.ts';
import { revokeLiveTokenRowsOfUsers, type UsersLosing } from './store-users.ts';
import { listedNameHint, usernamesListedAs } from '../util/listed-name.ts';
import { lookalikeLookupHint } from '../util/lookalike-names.ts';
import { quotedInput } from '../util/visible-text.ts';

export { TOKEN_MODELS, type TokenModel } from './store.ts';

/** One revoked code or token, as stored: its storage id (a digest), never its value. */
export interface RevokedToken {
  model: TokenModel;
  /** Storage id: base64url SHA-256 of the token (an opaque token) or of its jti (a JWT). */
  id: string;
  clientId: string | null;
  userId: string | null;
  grantId: string | null;
  format: string | null;
}

/** Which rows to revoke: every live code and token of a user, of a grant, or with these ids. */
export type RevocationTarget = LiveTokenSelection;

/**
 * Marks every matching live code and token revoked (`revoked_at`, `revoked_reason`) inside `trx` and
 * returns them. Expired rows are left alone (they are already unusable).
 */
export async function revokeTokens(
  trx: Transaction<Database> | Kysely<Database>,
  target: RevocationTarget,
  reason: TokenRevocationReason,
  now: number,
  options: { dryRun?: boolean } = {},
): Promise<RevokedToken[]> {
  const rows = await revokeLiveTokenRows(trx, target, reason, now, options);
  return rows.map(revokedToken);
}

/**
 * `revokeTokens` for many users who lose applications (a state or group change of every member),
 * each group of `losses` the users who lose the same ones: one statement for every group on
 * PostgreSQL, a statement per group and few hundred users on SQLite.
 */
export async function revokeTokensOfUsers(
  trx: Transaction<Database> | Kysely<Database>,
  losses: readonly UsersLosing[],
  reason: TokenRevocationReason,
  now: number,
): Promise<RevokedToken[]> {
  return (await revokeLiveTokenRowsOfUsers(trx, losses, reason, now)).map(revokedToken);
}

/** A revoked row as revocation reports it. */
export function revokedToken(row: TokenRow): RevokedToken {
  return {
    model: row.model,
    id: row.id,
    clientId: row.client_id,
    userId: row.user_id,
    grantId: row.grant_id,
    format: row.format,
  };
}

/** `token_type` of the audit event for a revoked row; codes are not tokens (no event). */
function tokenTypeOf(model: TokenModel): TokenType | undefined {
  switch (model) {
    case 'AccessToken':
    case 'ClientCredentials':
      return 'access_token';
    case 'RefreshToken':
      return 'refresh_token';
    case 'AuthorizationCode':
      return undefined;
  }
}

/** The storage id as the hex SHA-256 the audit events use (`token_sha256`). */
export function storageIdHex(id: string): string {
  return Buffer.from(id, 'base64url').toString('hex');
}

/** One `token_revoked` event per revoked token. */
export function publishRevocations(
  audit: Pick<AuditBus, 'publish'>,
  revoked: readonly RevokedToken[],
  reason: TokenRevocationReason,
  note?: string,
): void {
  for (const token of revoked) {
    const tokenType = tokenTypeOf(token.model);
    if (!tokenType) continue;
    audit.publish({
      kind: 'token_revoked',
      client_id: token.clientId ?? '',
      user_id: token.userId !== null && /^\d+$/.test(token.userId) ? Number(token.userId) : null,
      token_type: tokenType,
      token_sha256: storageIdHex(token.id),
      reason,
      ...(note === undefined ? {} : { note }),
    });
  }
}

/**
 * Called inside the transaction that revoked a user's tokens with `tokens revoke-user`, before it
 * commits: back-channel logout queues its `user_revoked` jobs for the applications in `clientIds`
 * here, so that the revocation and its jobs commit together. It may return a callback, run only
 * once the transaction committed (never for a dry run): notifications belong there, so that nobody
 * is told of work that was rolled back.
 */
export type UserRevokedHook = (
  trx: Transaction<Database>,
  revocation: { userId: number; clientIds: string[]; reason: TokenRevocationReason; dryRun: boolean },
) => Promise<void | (() => void)>;

export interface UserRevocationResult {
  userId: number;
  username: string;
  revoked: RevokedToken[];
  /** Provider (browser) sessions ended: their cookies meet the login page again. */
  sessionsEnded: number;
  /** Grants removed (`signOutUser` only): the user is asked for consent again. */
  grantsRemoved: number;
  dryRun: boolean;
}

export interface TokenRevocationService {
  /**
   * Revokes every live code and token of the user and ends the user's provider sessions in one
   * transaction (with `dryRun`, finds them and rolls back), then publishes `token_revoked` with
   * `reason` for each token and `sessions_ended` (with `actor`) when sessions ended.
   */
  revokeUser(
    username: string,
    options?: { reason?: TokenRevocationReason; note?: string; dryRun?: boolean; actor?: string },
  ): Promise<UserRevocationResult>;
  /**
   * `aa-oidc user sign-out`: as `revokeUser`, and removes every grant of the user too (each
   * application asks for consent again). Back-channel logout (`user_revoked`) goes to every
   * application that held a token or a session.
   */
  signOutUser(
    username: string,
    options?: { note?: string; dryRun?: boolean; actor?: string },
  ): Promise<UserRevocationResult>;
  /**
   * Ends one application's access for a user (the account page's "revoke"): in one transaction the
   * user's codes and tokens of that application are revoked and the user's grants to it deleted (it
   * asks for consent again next time), and the revoke hooks run for that application, so it gets a
   * back-channel logout (`user_revoked`) whether or not a token was still live. When the user had
   * neither a grant nor a token there (never allowed, or revoked already), nothing runs: no logout.
   */
  revokeApplication(
    userId: number,
    clientId: string,
    options?: { note?: string },
  ): Promise<{ revoked: RevokedToken[]; grantsRemoved: number }>;
  /**
   * `aa-oidc directory rebind`: within `trx`, what `signOutUser` does, for every user id holding a
   * code, token, session or grant (whoever the directory says the id is now: nobody is looked up),
   * and every sign-in under way dropped.
   * `committed` publishes the events and wakes back-channel logout: call it once `trx` committed.
   */
  signOutEveryoneWithin(
    trx: Transaction<Database>,
    options: { dryRun: boolean; note?: string; actor?: string },
  ): Promise<{
    users: number;
    /** Sign-ins under way, dropped. */
    interactions: number;
    revoked: RevokedToken[];
    sessionsEnded: number;
    grantsRemoved: number;
    committed(): void;
  }>;
  /** The hook point for back-channel logout (`user_revoked`); returns the remover. */
  onUserRevoked(hook: UserRevokedHook): () => void;
}

export class UnknownUserError extends Error {
  /**
   * `hint`: what `listedNameHint` adds, when the username was typed as a listing shows another, and
   * `lookalikeHint`, when it differs from one only in look-alike letters.
   */
  constructor(username: string, hint = '') {
    super(`no user named ${quotedInput(username)} (see 'aa-oidc user list')${hint}`);
    this.name = 'UnknownUserError';
  }
}

class DryRunRollback extends Error {}

export class InvalidRevocationNoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRevocationNoteError';
  }
}

/** At most 200 printable characters: it goes to the audit log as it is. */
export const MAX_NOTE_LENGTH = 200;

function validNote(note: string): string {
  const trimmed = note.trim();
  if (trimmed.length === 0) throw new InvalidRevocationNoteError('--reason must not be empty');
  if (trimmed.length > MAX_NOTE_LENGTH)
    throw new InvalidRevocationNoteError(`--reason must be at most ${MAX_NOTE_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(trimmed))
    throw new InvalidRevocationNoteError('--reason must not contain control characters (newlines, NUL…)');
  return trimmed;
}

export function createTokenRevocation(deps: {
  db: Kysely<Database>;
  directory: Pick<Directory, 'profileByUsername'>;
  audit: Pick<AuditBus, 'publish'>;
  now?: () => number;
}): TokenRevocationService {
  const hooks = new Set<UserRevokedHook>();
  const now = deps.now ?? Date.now;

  /**
   * Within `trx`: revokes the user's codes and tokens, runs the hooks (back-channel logout queues its
   * jobs) for every application that held a token or a session, before the sessions end (they read
   * their `sid`s), ends the sessions and, with `grants`, removes every grant. `afterCommit`: the
   * hooks' callbacks, to run only once `trx` committed.
   */
  const cleanWithin = async (
    trx: Transaction<Database>,
    userId: number,
    at: number,
    reason: TokenRevocationReason,
    dryRun: boolean,
    grants: boolean,
  ) => {
    // First, so that the same sign-out made twice at once reads what the other one left (and
    // first as well in a deactivation's unit of work, `revokeTokensOnUserChange`: one lock order).
    await lockSignInGeneration(trx, userId);
    const revoked = await revokeTokens(trx, { userId }, reason, at);
    const sessions = await selectUserSessions(trx, userId, at);
    const clientIds = [
      ...new Set([
        ...revoked.map((token) => token.clientId).filter((id) => id !== null),
        ...sessions.flatMap((session) => session.clients.map((client) => client.clientId)),
      ]),
    ].sort();
    const afterCommit: Array<() => void> = [];
    for (const hook of hooks) {
      const committed = await hook(trx, { userId, clientIds, reason, dryRun });
      if (committed) afterCommit.push(committed);
    }
    const ended = await endUserSessions(trx, userId, at, reason);
    const grantsRemoved = grants ? await deleteGrantsOfUser(trx, userId) : 0;
    return { revoked, sessionsEnded: ended.length, grantsRemoved, afterCommit };
  };

  /**
   * Revokes the user's codes and tokens and ends the user's provider sessions (and with `grants`,
   * removes every grant) in one transaction; the hooks queue back-channel logouts there for every
   * application that held a token or a session, before the sessions end (they read their `sid`s).
   */
  const cleanUser = async (
    username: string,
    options: {
      reason?: TokenRevocationReason;
      note?: string;
      dryRun?: boolean;
      actor?: string;
      grants: boolean;
    },
  ): Promise<UserRevocationResult> => {
    const reason = options.reason ?? 'user_revoked';
    const dryRun = options.dryRun === true;
    const note = options.note === undefined ? undefined : validNote(options.note);
    const user = await deps.directory.profileByUsername(username);
    if (!user) {
      // A username `user list` shows with an escape (`Esc\x1b`, Alliance Auth's), typed as shown.
      const listed = await usernamesListedAs(username, (stored) => deps.directory.profileByUsername(stored));
      // And one whose username it differs from only in look-alike letters (a Cyrillic `а` for `a`).
      const lookalike = await lookalikeLookupHint(
        'user',
        username,
        async (latin) => (await deps.directory.profileByUsername(latin))?.username,
      );
      throw new UnknownUserError(username, `${listedNameHint('user', username, listed)}${lookalike}`);
    }
    let result: Omit<UserRevocationResult, 'userId' | 'username' | 'dryRun'> = {
      revoked: [],
      sessionsEnded: 0,
      grantsRemoved: 0,
    };
    const afterCommit: Array<() => void> = [];
    try {
      await deps.db.transaction().execute(async (trx) => {
        const cleaned = await cleanWithin(trx, user.id, now(), reason, dryRun, options.grants);
        afterCommit.push(...cleaned.afterCommit);
        result = {
          revoked: cleaned.revoked,
          sessionsEnded: cleaned.sessionsEnded,
          grantsRemoved: cleaned.grantsRemoved,
        };
        if (dryRun) throw new DryRunRollback();
      });
    } catch (error) {
      if (!(error instanceof DryRunRollback)) throw error;
    }
    if (!dryRun) {
      for (const committed of afterCommit) committed();
      publishRevocations(deps.audit, result.revoked, reason, note);
      if (result.sessionsEnded > 0)
        deps.audit.publish({
          kind: 'sessions_ended',
          user_id: user.id,
          actor: options.actor ?? null,
          count: result.sessionsEnded,
          reason: options.grants ? 'signed_out' : 'user_revoked',
        });
    }
    return { userId: user.id, username: user.username, ...result, dryRun };
  };

  return {
    revokeUser(username, options = {}) {
      return cleanUser(username, { ...options, grants: false });
    },
    signOutUser(username, options = {}) {
      return cleanUser(username, { ...options, reason: 'user_revoked', grants: true });
    },
    async revokeApplication(userId, clientId, options = {}) {
      const note = options.note === undefined ? undefined : validNote(options.note);
      const reason: TokenRevocationReason = 'user_revoked';
      const afterCommit: Array<() => void> = [];
      const result = await deps.db.transaction().execute(async (trx) => {
        const revoked = await revokeTokens(trx, { userId, clientId }, reason, now());
        const grantsRemoved = await deleteUserGrants(trx, userId, clientId);
        // Nothing of the user's there (an application never allowed, or revoked already): the
        // application is not told, or any user could have logout tokens sent to any application.
        if (revoked.length === 0 && grantsRemoved === 0) return { revoked, grantsRemoved };
        for (const hook of hooks) {
          const committed = await hook(trx, { userId, clientIds: [clientId], reason, dryRun: false });
          if (committed) afterCommit.push(committed);
        }
        return { revoked, grantsRemoved };
      });
      for (const committed of afterCommit) committed();
      publishRevocations(deps.audit, result.revoked, reason, note);
      return result;
    },
    async signOutEveryoneWithin(trx, options) {
      const reason: TokenRevocationReason = 'user_revoked';
      const at = now();
      const userIds = await usersHoldingAnything(trx);
      const afterCommit: Array<() => void> = [];
      const revoked: RevokedToken[] = [];
      const sessionsEnded = new Map<number, number>();
      let grantsRemoved = 0;
      for (const userId of userIds) {
        const cleaned = await cleanWithin(trx, userId, at, reason, options.dryRun, true);
        afterCommit.push(...cleaned.afterCommit);
        revoked.push(...cleaned.revoked);
        if (cleaned.sessionsEnded > 0) sessionsEnded.set(userId, cleaned.sessionsEnded);
        grantsRemoved += cleaned.grantsRemoved;
      }
      let total = 0;
      for (const count of sessionsEnded.values()) total += count;
      // Sign-ins under way name an account too (from the login on): none completes afterwards.
      const interactions = await trx
        .deleteFrom('oidc_payload')
        .where('model', '=', 'Interaction')
        .executeTakeFirst();
      return {
        users: userIds.length,
        interactions: Number(interactions.numDeletedRows),
        revoked,
        sessionsEnded: total,
        grantsRemoved,
        committed() {
          for (const committed of afterCommit) committed();
          publishRevocations(deps.audit, revoked, reason, options.note);
          for (const [userId, count] of sessionsEnded)
            deps.audit.publish({
              kind: 'sessions_ended',
              user_id: userId,
              actor: options.actor ?? null,
              count,
              reason: 'signed_out',
            });
        },
      };
    },
    onUserRevoked(hook) {
      hooks.add(hook);
      return () => hooks.delete(hook);
    },
  };
}

/**
 * Deactivating or deleting a user revokes the user's codes and tokens in the unit of work of the
 * change (a consumer of the directory's change feed); the `token_revoked` events follow once it
 * committed. The revocation is stamped with the unit's time and the change's kind, which is how
 * the logout fan-out of the same unit still counts these tokens as held.
 */
export function revokeTokensOnUserChange(audit: Pick<AuditBus, 'publish'>): ChangeConsumer {
  return async (change, unit) => {
    let reason: TokenRevocationReason;
    switch (change.kind) {
      case 'user_deactivated':
      case 'user_deleted':
        reason = change.kind;
        break;
      default:
        return;
    }
    // The generation row before the token rows, in the order a sign-out of the user takes them
    // (`cleanUser`): this unit raises the generation later (`endUserSessions`), and holding the
    // tokens while waiting for it could deadlock with a sign-out holding it while waiting for them.
    await lockSignInGeneration(unit.trx, change.userId);
    const revoked = await revokeTokens(unit.trx, { userId: change.userId }, reason, unit.at);
    for (const [clientId, count] of countByClient(revoked))
      unit.report({ kind: 'tokens_revoked', userId: change.userId, clientId, count });
    if (revoked.length > 0) unit.afterCommit(() => publishRevocations(audit, revoked, reason));
  };
}

/** The user ids that hold a code, token, session or grant here (live or not), in order. */
async function usersHoldingAnything(trx: Transaction<Database>): Promise<number[]> {
  const rows = await trx
    .selectFrom('oidc_payload')
    .select('user_id')
    .distinct()
    .where('user_id', 'is not', null)
    .where('model', 'in', ['Session', 'Grant', ...TOKEN_MODELS])
    .execute();
  return rows
    .map((row) => row.user_id!)
    .filter((id) => /^\d+$/.test(id))
    .map(Number)
    .filter(isRowId)
    .sort((a, b) => a - b);
}

/** How many of the revoked codes and tokens each application held. */
export function countByClient(revoked: readonly RevokedToken[]): Map<string | null, number> {
  const counts = new Map<string | null, number>();
  for (const token of revoked) counts.set(token.clientId, (counts.get(token.clientId) ?? 0) + 1);
  return counts;
}
