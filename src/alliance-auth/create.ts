import type { Kysely } from 'kysely';
import type { Config } from '../config/load.ts';
import {
  DatabaseFaultError,
  DatabaseUnavailableError,
  explainPostgresConnectError,
  isDatabaseUnavailable,
} from '../db/errors.ts';
import {
  type AbandonedConnections,
  abandonedFields,
  describeAbandonedConnections,
} from '../db/pool-sockets.ts';
import type { Database } from '../db/schema.ts';
import type { ExternalAuthenticator, PasswordAuthenticator } from '../directory/authenticator.ts';
import type { DirectoryAdmin } from '../directory/builtin/types.ts';
import type { ChangePublisher, Directory, DirectoryChange } from '../directory/port.ts';
import type { Logger } from '../logging/logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import { renameChanges } from './catalog-names.ts';
import { judgeSignInsSinceLastCycle, toDirectoryChanges } from './changes.ts';
import {
  AA_DATABASE_SETTING,
  AllianceAuthDatabaseError,
  type AllianceAuthConnection,
  CONNECT_TIMEOUT_MS,
  isMissingFromSchema,
  isPrivilegeError,
  isStatementTimeout,
  openAllianceAuthDatabase,
  WHAT_HOLDS_AA_TABLES,
  WHAT_MAKES_AA_SCHEMA,
} from './database.ts';
import { AllianceAuthNoAnswerError } from './answer-limit.ts';
import { allianceAuthDirectory } from './directory.ts';
import { eveSsoAuthenticator } from './eve-authenticator.ts';
import { explainMysqlConnectError } from './mysql-tls.ts';
import { allianceAuthPasswordAuthenticator } from './password-login.ts';
import { type AllianceAuthPoller, createAllianceAuthPoller } from './poller.ts';
import { allianceAuthReadOnlyAdmin } from './read-only-admin.ts';
import { readAllianceAuthIdentity } from './identity.ts';
import { type AllianceAuthReadiness, allianceAuthReadinessCheck } from './readiness.ts';
import { checkAllianceAuthSchema } from './schema-check.ts';

/**
 * The Alliance Auth directory, as the composition root plugs it in where the built-in one stands
 * (`AA_OIDC_DIRECTORY=alliance-auth`): the port read from AA's database, an admin interface that
 * refuses every write, AA's password sign-in when enabled, and the poller that turns AA's changes
 * into the directory's lifecycle changes on the process's change feed.
 */
export interface AllianceAuthDirectory {
  connection: AllianceAuthConnection;
  directory: Directory;
  admin: DirectoryAdmin;
  /** AA's Django password hashes, when `directory.allianceAuth.passwordLogin` is on. */
  passwordAuthenticator: PasswordAuthenticator | undefined;
  /** "Sign in with EVE Online", when `AA_OIDC_EVE_SSO_CLIENT_ID` and `_SECRET` are set. */
  eveAuthenticator: ExternalAuthenticator | undefined;
  poller: AllianceAuthPoller;
  /**
   * Why AA's database could not be read at start (an `AllianceAuthDatabaseError` naming the URL
   * without its password and what to change), when `unreadableAtStart` is `report`: it did not
   * answer (its schema was not checked then), or its schema check refused it (a server or schema
   * older than supported, a table or column the login cannot SELECT). Undefined otherwise: with
   * `stop`, such a start fails instead.
   */
  unreadableAtStart: AllianceAuthDatabaseError | undefined;
  /** What tells this Alliance Auth database from another (`readAllianceAuthIdentity`). */
  identity(): Promise<string>;
  /**
   * AA's database for `/readyz`: whether it answers now, and holds every column aa-oidc reads (read at
   * most every `SCHEMA_RECHECK_MS` while it does, and at once after a read found one missing).
   */
  readiness(): Promise<AllianceAuthReadiness>;
  close(): Promise<void>;
}

export interface AllianceAuthDirectoryDependencies {
  config: Config;
  db: Kysely<Database>;
  publisher: Pick<ChangePublisher, 'deliverWithin'>;
  logger: Logger;
  /** The poller's cycle outcomes and last success (`aa_oidc_aa_poll_*`). */
  metrics: Pick<Metrics, 'aaPollCycles' | 'aaPollLastSuccess'>;
  /**
   * Of these users, those who hold a live session, code or token in aa-oidc's database (the token
   * store's `usersHoldingSignIns`), read within the cycle's transaction.
   */
  usersHoldingSignIns(db: Kysely<Database>, userIds: readonly number[], now: number): Promise<Set<number>>;
  /**
   * The users who redeemed a code at or after `since` and before `until` and still hold live tokens
   * (the token store's `usersHoldingTokensRedeemedSince`), read within the cycle's transaction.
   */
  usersSignedInSince(db: Kysely<Database>, since: number, until: number, now: number): Promise<Set<number>>;
  /**
   * What a start does when AA's database cannot be read (refused, unreachable, a login refused, a
   * schema the check refuses):
   * `stop` (the default: `serve`, `worker` and every other command stop with the database's message)
   * or `report` (`aa-oidc check`, which reports it and runs the checks that need no directory): the
   * directory is built all the same, its failure in `unreadableAtStart`.
   */
  unreadableAtStart?: 'stop' | 'report';
}

/** mysql2's codes for a connection that failed or died (node-postgres's are in db/errors.ts). */
const MYSQL_CONNECTION_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
]);

/**
 * True when a failed AA query means that AA's database cannot be used now (try again later): among
 * them a statement whose answer never came (`AllianceAuthNoAnswerError`).
 */
export function isAllianceAuthUnavailable(error: unknown): boolean {
  if (isDatabaseUnavailable(error) || error instanceof AllianceAuthNoAnswerError) return true;
  const { code, fatal, message } = (error ?? {}) as { code?: unknown; fatal?: unknown; message?: unknown };
  if (typeof code === 'string' && MYSQL_CONNECTION_CODES.has(code)) return true;
  if (fatal === true) return true;
  return typeof message === 'string' && /Pool is closed|connect ETIMEDOUT|Connection lost/i.test(message);
}

/**
 * True when a failed AA query was refused for a privilege the login lacks (`isPrivilegeError`: a
 * GRANT revoked while serving) or the login itself refused (MySQL and MariaDB's
 * ER_ACCESS_DENIED_ERROR 1045, on a new connection): the database answers, but not what the request
 * needs; no outage, and not the person's doing.
 */
export function isAllianceAuthPrivilegeDenied(error: unknown): boolean {
  return isPrivilegeError(error) || (error as { errno?: unknown } | null)?.errno === 1045;
}

/** What the log names when an AA read was refused a privilege (`DatabaseFaultError.what`). */
export const ALLIANCE_AUTH_PRIVILEGE_DENIED = 'an Alliance Auth read refused for a privilege its login lacks';

/**
 * `cannot connect to Alliance Auth's database at URL (setting): what to change`, when `error` says
 * that a connection could not be opened or logged in (refused, TLS, credentials); undefined when it
 * is anything else.
 */
export function allianceAuthConnectFailure(
  error: unknown,
  connection: AllianceAuthConnection,
): string | undefined {
  const reason = (error as Error | undefined)?.message ?? String(error);
  if (!isAllianceAuthUnavailable(error) && !/access denied|password authentication/i.test(reason)) {
    return undefined;
  }
  // The displayed URL (password hidden) names the host, user and database the explanations need.
  const url = connection.displayUrl;
  let explanation: string;
  if (connection.kind === 'mysql') {
    explanation = explainMysqlConnectError(error, url, {
      setting: AA_DATABASE_SETTING,
      tls: connection.mysqlTls,
    });
  } else if (/unsupported startup parameter: options/.test(reason)) {
    explanation = `a pooler in front of PostgreSQL (PgBouncer) refuses the startup parameter "options", with which aa-oidc makes its sessions read-only and limits a statement's time (${reason}); connect to PostgreSQL directly, or add options to PgBouncer's ignore_startup_parameters (the login's SELECT-only grants then keep aa-oidc from writing)`;
  } else {
    explanation = explainPostgresConnectError(error, url, {
      setting: AA_DATABASE_SETTING,
      timeoutMs: CONNECT_TIMEOUT_MS,
      timeoutSetting: 'a fixed 5 s',
    });
  }
  return `cannot connect to Alliance Auth's database at ${url} (${AA_DATABASE_SETTING}): ${explanation}`;
}

/**
 * Every method of `target` (the reads made for `purpose`), with a failure to reach AA's database
 * turned into the error that makes a request answer "try again" (503), never a 500; so are three faults
 * the person did not cause, each a `DatabaseFaultError` (logged each time, naming the read and what to
 * do): a read refused for a privilege the login lacks (the grant to run), a read the server gave up on
 * at its statement timeout (after how many seconds, and what may hold AA's tables), and a read of a
 * table or column AA's schema lacks while serving (an upgrade or a migration applied halfway: the
 * start-up schema check passed, so it changed since). A read refused or finding a table or column
 * missing calls `onSchemaError`, as a poll cycle's does. The message names the setting and the URL
 * without its password, never the password.
 */
function unavailableAsTryAgain<T extends object>(
  target: T,
  connection: Pick<AllianceAuthConnection, 'displayUrl' | 'statementTimeoutMs'>,
  purpose: string,
  onSchemaError: () => void,
): T {
  const wrapped = {} as Record<string, unknown>;
  const database = `Alliance Auth's database (${connection.displayUrl}, ${AA_DATABASE_SETTING})`;
  // The 503's log line names this database, not aa-oidc's own (`DatabaseFaultError.database`).
  const failed = `Alliance Auth's database at ${connection.displayUrl}`;
  const translate = (error: unknown, method: string): never => {
    if (error instanceof DatabaseFaultError && error.database === undefined) {
      // A fault found in what AA answered (a collation its login cannot read): AA's database's.
      throw new DatabaseFaultError(error.message, error.what, { cause: error, database: failed });
    }
    if (isStatementTimeout(error)) {
      const seconds = connection.statementTimeoutMs / 1000;
      throw new DatabaseFaultError(
        `${database} gave up on a read at its statement timeout of ${seconds} s (${(error as Error).message}); ` +
          `look for ${WHAT_HOLDS_AA_TABLES}. The limit is AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS`,
        `the Alliance Auth read for ${purpose} (${method}) ran out of time after ${seconds} s`,
        { database: failed },
      );
    }
    if (!isAllianceAuthUnavailable(error) && isAllianceAuthPrivilegeDenied(error)) {
      // The information schema hides what the login may not read: /readyz finds it missing too.
      onSchemaError();
      throw new DatabaseFaultError(
        `${database} refused a read: ${(error as Error).message}; ` +
          "grant the login SELECT on Alliance Auth's tables (GRANT SELECT ON <database>.* TO <login> on MySQL or " +
          'MariaDB; GRANT SELECT ON ALL TABLES IN SCHEMA public TO <login> on PostgreSQL)',
        ALLIANCE_AUTH_PRIVILEGE_DENIED,
        { database: failed },
      );
    }
    if (isMissingFromSchema(error)) {
      onSchemaError();
      throw new DatabaseFaultError(
        `${database} lacks a table or column aa-oidc reads (${(error as Error).message}); ` +
          `check ${WHAT_MAKES_AA_SCHEMA}. aa-oidc check names every one missing`,
        `the Alliance Auth read for ${purpose} (${method}) found a table or column missing`,
        { database: failed },
      );
    }
    if (!isAllianceAuthUnavailable(error)) throw error;
    throw new DatabaseUnavailableError(`${database} cannot be reached: ${(error as Error).message}`, {
      cause: error,
      database: failed,
    });
  };
  for (const [name, value] of Object.entries(target)) {
    wrapped[name] =
      typeof value === 'function'
        ? (...args: unknown[]) => {
            const result = (value as (...a: unknown[]) => unknown).apply(target, args);
            // Only what queries (a promise) is translated; subscribe() and the like return as they are.
            return result instanceof Promise
              ? result.catch((error: unknown) => translate(error, name))
              : result;
          }
        : value;
  }
  return wrapped as T;
}

/**
 * The warning for the connections to AA's database that closing it closed without the server's
 * goodbye: `serve` and the CLI's commands that open their own (`aa-oidc import plugin-apps`).
 */
export function warnOfAbandonedConnections(log: Logger): (abandoned: AbandonedConnections) => void {
  return (abandoned) =>
    log.warn(
      abandonedFields(abandoned),
      describeAbandonedConnections("connection(s) to Alliance Auth's database", abandoned),
    );
}

/**
 * Opens AA's database and proves it answers and holds a supported schema; an unreachable database or
 * an unsupported schema is an error naming `AA_OIDC_AA_DATABASE_URL` (returned in
 * `unreadableAtStart` instead, with `deps.unreadableAtStart` `report`). Nothing polls until
 * `poller.start()` (the server does that; the CLI's commands only read).
 */
export async function createAllianceAuthDirectory(
  deps: AllianceAuthDirectoryDependencies,
): Promise<AllianceAuthDirectory> {
  const settings = deps.config.directory.allianceAuth;
  const log = deps.logger.child({ component: 'alliance-auth' });
  if (!settings.databaseUrl) {
    throw new AllianceAuthDatabaseError(
      `${AA_DATABASE_SETTING}: required when AA_OIDC_DIRECTORY=alliance-auth`,
    );
  }
  const connection = openAllianceAuthDatabase(settings.databaseUrl, {
    statementTimeoutMs: settings.statementTimeoutSeconds * 1000,
    onIdleConnectionError: (error) =>
      log.warn({ err: { message: error.message } }, "an idle connection to Alliance Auth's database closed"),
    onConnectionsAbandoned: warnOfAbandonedConnections(log),
  });
  let unreadableAtStart: AllianceAuthDatabaseError | undefined;
  try {
    try {
      await connection.db.selectFrom('auth_user').select('id').limit(1).execute();
    } catch (error) {
      unreadableAtStart = new AllianceAuthDatabaseError(
        allianceAuthConnectFailure(error, connection) ??
          `Alliance Auth's database at ${connection.displayUrl} (${AA_DATABASE_SETTING}) cannot be read: ${(error as Error).message}`,
      );
      if ((deps.unreadableAtStart ?? 'stop') === 'stop') throw unreadableAtStart;
    }
    if (connection.mysqlTls?.mode === 'REQUIRED') {
      log.warn(
        `${AA_DATABASE_SETTING} has ssl-mode=REQUIRED: the connection is encrypted, but the server's certificate is not checked, so anyone on the path can pose as the server; use ssl-mode=VERIFY_IDENTITY with ssl-ca`,
      );
    }
    // A schema is checked only in a database that could be read.
    if (unreadableAtStart === undefined) {
      const report = await checkAllianceAuthSchema(connection.db, connection.kind, {
        passwordLogin: settings.passwordLogin,
      });
      if (report.errors.length > 0) {
        // Read no further, as for a database that does not answer: `check` reports it (E009), a
        // start stops with it.
        unreadableAtStart = new AllianceAuthDatabaseError(
          `Alliance Auth's database at ${connection.displayUrl} (${AA_DATABASE_SETTING}) is not supported: ${report.errors.join('; ')}`,
        );
        if ((deps.unreadableAtStart ?? 'stop') === 'stop') throw unreadableAtStart;
      } else {
        for (const warning of report.warnings) log.warn({ heads: report.heads }, warning);
      }
    }
  } catch (error) {
    await connection.close();
    throw error;
  }

  const options = { emailVerified: settings.emailVerified };
  // A read that finds a table or column missing, or is refused one for a privilege (a request's, or a
  // poll cycle's), makes /readyz look at AA's columns at its next check.
  const readiness = allianceAuthReadinessCheck({ connection, logger: log });
  const schemaErrorFound = () => readiness.lookAgain();
  const directory = unavailableAsTryAgain(
    allianceAuthDirectory(connection.db, options),
    connection,
    'the directory',
    schemaErrorFound,
  );
  const admin = unavailableAsTryAgain(
    allianceAuthReadOnlyAdmin(connection.db, options),
    connection,
    'the admin pages',
    schemaErrorFound,
  );
  const passwordAuthenticator = settings.passwordLogin
    ? unavailableAsTryAgain(
        allianceAuthPasswordAuthenticator(connection.db, connection.kind, log),
        connection,
        'a password sign-in',
        schemaErrorFound,
      )
    : undefined;
  const eve = deps.config.eveSso;
  const eveAuthenticator =
    eve.clientId && eve.clientSecret && settings.loginUrl
      ? unavailableAsTryAgain(
          eveSsoAuthenticator({
            aa: connection.db,
            settings: {
              clientId: eve.clientId,
              clientSecret: eve.clientSecret,
              authorizationUrl: eve.authorizationUrl,
              tokenUrl: eve.tokenUrl,
              jwksUrl: eve.jwksUrl,
              allowPrivateEndpoints: eve.allowPrivateEndpoints,
              requestTimeoutMs: eve.requestTimeoutMs,
            },
            mode: deps.config.mode,
            loginUrl: settings.loginUrl,
            logger: log,
          }),
          connection,
          'an EVE sign-in',
          schemaErrorFound,
        )
      : undefined;
  const poller = createAllianceAuthPoller({
    aa: connection,
    db: deps.db,
    intervalMs: settings.pollSeconds * 1000,
    logger: log,
    metrics: deps.metrics,
    usersSignedInSince: (trx, since, until, now) => deps.usersSignedInSince(trx, since, until, now),
    onSchemaError: schemaErrorFound,
    async apply(unit, changes, fingerprints) {
      for (const change of changes) {
        log.info(
          { change: change.kind, userId: change.userId },
          'Alliance Auth changed a user; its consequences follow',
        );
      }
      // Renames first: the whitelists follow them before any user's change is judged.
      const renamed = renameChanges(fingerprints.renames);
      if (renamed.length > 0) await deps.publisher.deliverWithin(unit, ...renamed);
      // Deleted in AA: whoever still whitelists the name hears of it (nothing can refuse it now).
      const deleted = fingerprints.deletions.map(({ entity, name }): DirectoryChange => ({
        kind: 'catalog_deleted',
        entity,
        name,
        alreadyDeleted: true,
      }));
      if (deleted.length > 0) await deps.publisher.deliverWithin(unit, ...deleted);
      // All of the cycle's changes at once: a consumer with a batch form (token revocation,
      // back-channel logout) takes them together, so that a state AA changed for a whole corporation
      // costs a few statements per few hundred users rather than several per user.
      const newlyInactive = changes
        .filter((change) => change.kind === 'user_created')
        .map((change) => change.userId)
        .filter((userId) => fingerprints.current.get(userId)?.active === false);
      // Those who signed in since the previous cycle are judged by what they hold: their access may
      // have come and gone between the two cycles, unseen by either fingerprint.
      const userChanges = judgeSignInsSinceLastCycle(
        toDirectoryChanges(changes, fingerprints.previous, fingerprints.current, {
          passwordLogin: settings.passwordLogin,
          newUsersHeldHere:
            newlyInactive.length > 0
              ? await deps.usersHoldingSignIns(unit.trx, newlyInactive, unit.at)
              : new Set<number>(),
        }),
        fingerprints.previous,
        fingerprints.current,
        fingerprints.signedInSince,
      );
      if (userChanges.length > 0) await deps.publisher.deliverWithin(unit, ...userChanges);
    },
  });
  return {
    connection,
    directory,
    admin,
    passwordAuthenticator,
    eveAuthenticator,
    poller,
    unreadableAtStart,
    identity: () => readAllianceAuthIdentity(connection.db, connection.kind),
    readiness: () => readiness.judge(),
    async close() {
      await poller.stop();
      await connection.close();
    },
  };
}
