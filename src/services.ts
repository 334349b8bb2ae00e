import { type AllianceAuthDirectory, createAllianceAuthDirectory } from './alliance-auth/create.ts';
import { createApplicationService } from './applications/service.ts';
import type { Authenticator } from './directory/authenticator.ts';
import { createBuiltinDirectory } from './directory/builtin/create.ts';
import type { DirectoryAdmin } from './directory/builtin/types.ts';
import { bindDirectory, type DirectoryBinding, type DirectoryBindingStatus } from './directory/binding.ts';
import { createChangeFeed } from './directory/change-feed.ts';
import type { ChangeFeed, Directory } from './directory/port.ts';
import type { ApplicationService } from './applications/types.ts';
import { type Config, settingName } from './config/load.ts';
import { connectDatabase, connectOptionsFor, type DatabaseHandle } from './db/connect.ts';
import { abandonedFields, describeAbandonedConnections } from './db/pool-sockets.ts';
import { type WriteBatch, writeBatch } from './db/write-batch.ts';
import { workerWrites } from './db/write-worker.ts';
import { migrateToLatest, migrationsUnknownToThisRelease, pendingMigrations } from './db/migrate.ts';
import { createKeyService, type KeyService } from './keys/service.ts';
import { createKeyStore } from './keys/store.ts';
import type { KeyStore } from './keys/types.ts';
import { createLogger, flushLogger, type Logger, type LoggerOptions } from './logging/logger.ts';
import { createSecretFormatter, type SecretFormatter } from './logging/secrets.ts';
import type { AuditBus } from './audit/bus.ts';
import { createAudit } from './audit/create.ts';
import { type AuditStore, batchDelayFor, createAuditStore } from './audit/store.ts';
import { auditApplicationChanges, auditDirectoryChanges, auditKeyChanges } from './audit/directory-events.ts';
import { createMetrics, type Metrics } from './metrics/registry.ts';
import { createTwoFactorService, type TwoFactorService } from './two-factor/service.ts';
import {
  createTokenRevocation,
  revokeTokensOnUserChange,
  type TokenRevocationService,
} from './tokens/revocation.ts';
import { endAccessOnUserChange, endAccessOnWhitelistChange } from './tokens/access-loss.ts';
import { usersHoldingSignIns, usersHoldingTokensRedeemedSince } from './tokens/store-users.ts';
import {
  backchannelTargetCheck,
  gateOptionsFor,
  privateTargetsHint,
} from './logout/ssrf/application-check.ts';
import type { Resolver } from './logout/ssrf/resolver.ts';
import type { Connector } from './logout/http-delivery.ts';
import { createLogoutService, type LogoutService, userRevokedHook } from './logout/service.ts';

export interface ServicesOptions {
  logger?: LoggerOptions;
  /** Apply pending migrations first (default: in development mode only). */
  migrate?: boolean;
  /**
   * Create the first signing key when none is active (default true: `serve` needs one). The CLI's
   * administrative commands pass false, so that reading never writes; they sign nothing (or fail
   * naming the missing key, `bcl test`), so neither do they log that no key is active.
   */
  ensureSigningKey?: boolean;
  /**
   * Decrypt and load the signing keys' private parts at start, and follow rotations (default true:
   * `serve`, `worker` and the commands that sign or change keys stop on a key that does not load).
   * False: the key store stays empty and idle (`aa-oidc check`, which reports such a key, E013, and
   * `aa-oidc keys list`, which shows the keys' public metadata only).
   */
  loadSigningKeys?: boolean;
  /**
   * The process writes (`serve`, `worker`, `demo`): a database that takes no writes stops it at start
   * with a `DatabaseUnavailableError` naming the database and the cause (default false: the CLI's
   * administrative commands still read a read-only file).
   */
  forWriting?: boolean;
  /**
   * What a start does when Alliance Auth's database (the directory) cannot be read: `stop` (default)
   * or `report` (`aa-oidc check`): the services start, the failure in `allianceAuth.unreadableAtStart`.
   */
  allianceAuthUnreadableAtStart?: 'stop' | 'report';
  /**
   * What may refuse the start (`serve`'s and `worker`'s checks), run once the services read, before
   * the start's first write: the directory binding (`forWriting`), the signing key
   * (`ensureSigningKey`), expired keys' removal. Throwing refuses the start with nothing written, so
   * the next start (another AA_OIDC_SECRET_KEY with the fix) begins as the first would have. Run
   * again, before the signing key, when the binding this start went to record was found recorded
   * for another directory meanwhile (another first start, configured otherwise, recorded its own
   * between this one's read and its write): the judgement is of the binding as stored (E010).
   */
  beforeStartWrites?: (read: StartReads) => Promise<void>;
  /** The back-channel logout SSRF gate's name resolver; default the system resolver. Tests inject one. */
  resolver?: Resolver;
  /** The back-channel delivery connection layer; tests inject one. */
  bclConnector?: Connector;
}

/** What `beforeStartWrites` judges a start by, as the database and the directory are before it writes. */
export type StartReads = Pick<
  Services,
  'config' | 'database' | 'startedMigrated' | 'applications' | 'directory' | 'directoryBinding'
> & { keys: Pick<KeyService, 'list'> };

/**
 * Everything but HTTP: the database and the domain services, built once and passed down. The CLI
 * uses this directly; `createApp` adds the HTTP surface on top. Nothing is a module-level singleton.
 */
export interface Services {
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  /**
   * False when the database had pending migrations as these services started (production before
   * `aa-oidc migrate`): what start-up does only on a migrated database (the signing key, the
   * bootstrap superuser, back-channel delivery) was not done, and a restart does it.
   */
  startedMigrated: boolean;
  /**
   * The writes requests make at their end, committed together (src/db/write-batch.ts); on a SQLite
   * file, on a worker thread (src/db/write-worker.ts).
   */
  writes: WriteBatch;
  /** This app's Prometheus registry and its metrics (src/metrics/registry.ts). */
  metrics: Metrics;
  /** Typed audit events; `publish()` never throws nor waits for a receiver. */
  audit: AuditBus;
  /** The audit events kept in the database (`audit.database`), with their retention. */
  auditStore: AuditStore;
  /** How secrets may appear in logs and events: `sha256Hex`, `maskSecret` (src/logging/secrets.ts). */
  secrets: SecretFormatter;
  /** The one write path for applications (OIDC clients), and their lookup. */
  applications: ApplicationService;
  /**
   * The directory port (src/directory/port.ts): profiles, states, groups and whitelist coverage as
   * plain values. Everything that reads users reads through it.
   */
  directory: Directory;
  /** Where the directory's lifecycle changes arrive; consumers subscribe here. */
  directoryChanges: ChangeFeed;
  /**
   * The built-in directory's admin interface: the one write path for users, states, groups and
   * memberships, its password checks and first-run setup. With the Alliance Auth directory every
   * write refuses (`DirectoryError` code `read_only`) and the reads show AA's users.
   */
  directoryAdmin: DirectoryAdmin;
  /**
   * True when users, states and groups cannot be changed here (the Alliance Auth directory): pages
   * and commands offer no write, and say that the directory is Alliance Auth.
   */
  directoryReadOnly: boolean;
  /** The Alliance Auth directory's connection, poller and readiness, when it is the directory. */
  allianceAuth: AllianceAuthDirectory | undefined;
  /**
   * The configured directory against the one this database's user ids belong to, recorded by the
   * first process that writes (`serve`, `worker`); `aa-oidc check` and `serve` refuse another (E010).
   */
  directoryBinding: DirectoryBindingStatus;
  /** How people sign in at the login page. */
  authenticators: readonly Authenticator[];
  /** Token operations: `tokens revoke-user`, with the hook for back-channel logout. */
  tokens: TokenRevocationService;
  /** The one write path for signing keys. */
  keys: KeyService;
  /** The signing keys as loaded in this process; reloads within seconds after a rotation anywhere. */
  keyStore: KeyStore;
  /** Two-factor sign-in (TOTP, recovery codes): the one write path of its tables. */
  twoFactor: TwoFactorService;
  /** Back-channel logout: triggers, durable queue, worker, `bcl test`. */
  logout: LogoutService;
  /**
   * The process's stop began (before the work that still runs has ended): the audit bus and the
   * back-channel logout service are told, so that what fails from now on as the stop's doing is said
   * as such (`AuditBus.stopping`, `LogoutService.stopping`). Called by `close` too.
   */
  stopping(): void;
  /** Releases everything this object opened, in reverse order. */
  close(): Promise<void>;
}

export async function createServices(config: Config, options: ServicesOptions = {}): Promise<Services> {
  const logger = createLogger(config, options.logger);
  const database = await connectDatabase(config.database, {
    ...connectOptionsFor(config),
    forWriting: options.forWriting ?? false,
    onIdleConnectionError: (error) =>
      logger.warn(
        { err: { message: error.message } },
        'an idle database connection was closed by the server',
      ),
    onConnectionsAbandoned: (abandoned) =>
      logger.warn(
        abandonedFields(abandoned),
        describeAbandonedConnections('database connection(s)', abandoned),
      ),
    // The transaction threw its own failure; the rollback's only says that the connection died with
    // it, or that SQLite had already rolled it back.
    onRollbackFailure: (error) =>
      logger.debug(
        { err: { message: error instanceof Error ? error.message : String(error) } },
        'the rollback of a failed transaction failed too',
      ),
  });
  const closers: Array<() => Promise<void> | void> = [() => database.close()];
  // A SQLite file's batched writes commit on a worker thread (src/db/write-worker.ts); ':memory:' has
  // one connection only, and PostgreSQL's connections write in parallel anyway.
  const writeWorker =
    database.sqlite && !database.sqlite.memory
      ? workerWrites(database.db, database.sqlite.name, {
          onWorkerLost: (error) =>
            logger.error({ err: { message: error.message } }, 'the SQLite write worker stopped'),
        })
      : undefined;
  // Closed after everything that writes through it (the audit store, the server's requests).
  if (writeWorker) closers.push(() => writeWorker.close());
  const writes = writeWorker ?? writeBatch(database.db, database.kind);
  const metrics = createMetrics();
  const secrets = createSecretFormatter(config);
  const auditStore = createAuditStore(database.db, {
    retentionDays: config.audit.retentionDays,
    batchDelayMs: batchDelayFor(config.audit.receiverTimeoutMs),
    skips: config.audit.databaseExclude,
    ...(writeWorker ? { writes: writeWorker } : {}),
    // The last batch at a stop: PostgreSQL's writes are waited for as long as a connection may take
    // to open (over a dead route each would wait for the query timeout, 60 s); a SQLite file's end
    // within its busy timeout.
    ...(database.kind === 'postgres' ? { closeWithinMs: config.databaseConnectTimeoutMs } : {}),
    onUnwritten: ({ events, kinds }) =>
      logger.warn(
        { receiver: 'database', events, kinds },
        `${events} audit event(s) not confirmed written to the database at the stop: their write ` +
          (database.kind === 'postgres'
            ? `failed or did not end within ${config.databaseConnectTimeoutMs / 1000} s (${settingName(config.origins, 'databaseConnectTimeoutMs')}; the database unreachable?)`
            : 'failed') +
          '; the log (at info level) and audit.jsonlPath, when set, still have them',
      ),
  });
  const audit = createAudit(config, logger, metrics, config.audit.database ? [auditStore.receiver] : []);
  closers.push(() => audit.close());
  // Told at the stop's start, before the closers: the back-channel logout service once it exists.
  const toldOfStop: Array<() => void> = [() => audit.stopping()];
  const stopping = () => {
    for (const tell of toldOfStop) tell();
  };
  const close = async () => {
    // What the closers below cut or give up on is the stop's: the audit store counts its events in
    // one line at its close, rather than the bus a line for each, and pg-boss's failures are at debug.
    stopping();
    for (const closer of closers.reverse()) await closer();
    flushLogger(logger);
  };
  try {
    if (options.migrate ?? config.mode === 'development') {
      const applied = await migrateToLatest(database.db, database.kind);
      if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
    }
    // Every committed signing-key change (a rotation, a withdrawal, …) is an admin_change audit event.
    const keys = createKeyService(database, config, logger, { onKeyChange: auditKeyChanges(audit) });
    const migrated = (await pendingMigrations(database.db, database.kind)).length === 0;
    if (options.forWriting) await warnOfNewerRelease(database, logger);
    const directoryLog = logger.child({ component: 'directory' });
    // Consumers of directory changes subscribe to the feed; the directory publishes into it, and
    // each change and its consequences commit in one unit of work of this database.
    const directoryChanges = createChangeFeed();
    let directory: Directory;
    let directoryAdmin: DirectoryAdmin;
    let authenticators: Authenticator[];
    let allianceAuth: AllianceAuthDirectory | undefined;
    if (config.directory.source === 'alliance-auth') {
      // Alliance Auth's database, read-only: its changes arrive by polling (started by the server).
      allianceAuth = await createAllianceAuthDirectory({
        config,
        db: database.db,
        publisher: directoryChanges,
        logger,
        metrics,
        usersHoldingSignIns,
        usersSignedInSince: usersHoldingTokensRedeemedSince,
        unreadableAtStart: options.allianceAuthUnreadableAtStart ?? 'stop',
      });
      const opened = allianceAuth;
      closers.push(() => opened.close());
      directory = allianceAuth.directory;
      directoryAdmin = allianceAuth.admin;
      authenticators = [allianceAuth.eveAuthenticator, allianceAuth.passwordAuthenticator].filter(
        (authenticator) => authenticator !== undefined,
      );
    } else {
      const builtin = createBuiltinDirectory(database.db, directoryChanges, directoryLog);
      directory = builtin.directory;
      directoryAdmin = builtin.admin;
      authenticators = [builtin.authenticator];
    }
    const configured = migrated ? await configuredDirectory(allianceAuth) : undefined;
    const bindingAsRead: DirectoryBindingStatus = migrated
      ? await bindDirectory(database.db, configured, { record: false })
      : { kind: 'unrecorded', current: undefined };
    // Every application write runs the full SSRF gate on the back-channel URI (syntax first).
    const applications = createApplicationService(database.db, config, logger, {
      directory,
      backchannelTargetCheck: backchannelTargetCheck(
        gateOptionsFor(config, options.resolver),
        privateTargetsHint(config),
      ),
    });
    // Whitelists follow renamed states and groups, and keep whitelisted ones from being deleted.
    closers.push(directoryChanges.subscribe(applications.onDirectoryChange));
    // Every committed change made through the admin interface is an admin_change audit event.
    closers.push(directoryAdmin.afterCommit(auditDirectoryChanges(audit, logger)));
    // Every committed application change is an admin_change audit event too.
    closers.push(applications.onChange(auditApplicationChanges(audit)));
    const startReads = (directoryBinding: DirectoryBindingStatus): StartReads => ({
      config,
      database,
      startedMigrated: migrated,
      applications,
      directory,
      directoryBinding,
      keys,
    });
    await options.beforeStartWrites?.(startReads(bindingAsRead));
    // The start's writes, past whatever may refuse it. The binding first: it decides whose user ids
    // this start would issue for, and a start it refuses writes no signing key.
    const directoryBinding =
      bindingAsRead.kind === 'unrecorded' && migrated && options.forWriting
        ? await bindDirectory(database.db, configured, { record: true })
        : bindingAsRead;
    // Two first starts at once with different directories both read no binding; the one whose record
    // lost finds the other's stored, and is judged (E010) on it, not on the binding it read.
    if (directoryBinding.kind === 'differs' && bindingAsRead.kind !== 'differs')
      await options.beforeStartWrites?.(startReads(directoryBinding));
    if (migrated && (options.ensureSigningKey ?? true)) await keys.ensureActiveKey();
    // On a database with pending migrations (production before `aa-oidc migrate`) the store starts
    // empty and keeps polling; /readyz answers 503 meanwhile (the log names the pending migrations).
    const loadSigningKeys = options.loadSigningKeys ?? true;
    const keyStore = await createKeyStore(database, config, logger, {
      initialLoad: migrated && loadSigningKeys,
      watch: loadSigningKeys,
      warnWithoutActiveKey: options.ensureSigningKey ?? true,
    });
    closers.push(() => keyStore.close());
    // Deactivation, deletion and lost access queue back-channel logouts in the change's unit of
    // work (tokens revoked by the same change still count as held).
    const logout = createLogoutService({
      config,
      database,
      logger,
      audit,
      metrics,
      applications,
      keyStore,
      ...(options.resolver ? { resolver: options.resolver } : {}),
      ...(options.bclConnector ? { connector: options.bclConnector } : {}),
    });
    closers.push(() => logout.close());
    toldOfStop.push(() => logout.stopping());
    // Deactivating or deleting a user revokes the user's codes and tokens in the same unit of work.
    closers.push(directoryChanges.subscribe(revokeTokensOnUserChange(audit)));
    closers.push(directoryChanges.subscribe(logout.onDirectoryChange));
    // Deactivation, deletion and a new password end the user's provider sessions; a lost application
    // loses its codes, tokens and grant. After back-channel logout, which still reads them.
    closers.push(
      directoryChanges.subscribe(endAccessOnUserChange({ kind: database.kind, audit, logger: directoryLog })),
    );
    // Whitelists that no longer admit users who signed in at the application: back-channel logout
    // first (it reads their tokens and sessions), then their codes, tokens and grant there, all in
    // the update's unit of work.
    closers.push(
      applications.onWhitelistChange(
        endAccessOnWhitelistChange({
          db: database.db,
          directory,
          audit,
          logger: logger.child({ component: 'applications' }),
          announce: logout.onWhitelistLoss,
        }),
      ),
    );
    const tokens = createTokenRevocation({ db: database.db, directory, audit });
    // `tokens revoke-user` queues `user_revoked` logouts in its transaction.
    closers.push(tokens.onUserRevoked(userRevokedHook(logout)));
    const twoFactor = createTwoFactorService({
      db: database.db,
      secretKey: config.secretKey,
      logger,
      issuerName: config.branding.name,
      audit,
    });
    // A deleted user's two-factor enrolment goes with the user, in the same unit of work.
    closers.push(
      directoryChanges.subscribe(async (change, unit) => {
        if (change.kind === 'user_deleted') await twoFactor.forget(change.userId, unit.trx);
      }),
    );
    return {
      config,
      logger,
      database,
      startedMigrated: migrated,
      writes,
      metrics,
      audit,
      auditStore,
      secrets,
      keys,
      keyStore,
      applications,
      directory,
      directoryChanges,
      directoryAdmin,
      directoryReadOnly: allianceAuth !== undefined,
      allianceAuth,
      directoryBinding,
      authenticators,
      tokens,
      twoFactor,
      logout,
      stopping,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The directory this process runs with, as its binding names it; undefined when Alliance Auth's
 * database could not be read at start (`aa-oidc check` reports that as E009).
 */
async function configuredDirectory(
  allianceAuth: AllianceAuthDirectory | undefined,
): Promise<DirectoryBinding | undefined> {
  if (!allianceAuth) return { directory: 'builtin' };
  if (allianceAuth.unreadableAtStart) return undefined;
  return { directory: 'alliance-auth', identity: await allianceAuth.identity() };
}

/**
 * A process that writes (`serve`, `worker`) on a database a newer release migrated logs a warning
 * and runs: during an upgrade whose release notes call its migrations additive, old instances may
 * keep serving (docs/upgrading.md), so `/readyz` does not turn them away; otherwise this release
 * writes to a schema it does not know. `aa-oidc check` reports the same (W021).
 */
async function warnOfNewerRelease(database: DatabaseHandle, logger: Logger): Promise<void> {
  const unknown = await migrationsUnknownToThisRelease(database.db);
  if (unknown.length === 0) return;
  logger.warn(
    { migrations: unknown },
    `the database was migrated by a newer release of aa-oidc (${unknown.length} migration(s) this release does not have): ` +
      'this release runs on it only during an upgrade whose release notes say its migrations are additive; ' +
      'otherwise stop it and start the newer release (docs/upgrading.md)',
  );
}
