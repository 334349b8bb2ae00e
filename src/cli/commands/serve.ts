import type { Command } from 'commander';
import { createApp } from '../../app.ts';
import { pendingMigrations } from '../../db/migrate.ts';
import type { BootstrapLogin } from '../../directory/builtin/types.ts';
import { BINDING_CHECK_MS, reboundMeanwhile, watchDirectoryBinding } from '../../directory/binding.ts';
import type { MetricsListener } from '../../metrics/http.ts';
import {
  directoryBindingChecks,
  type Finding,
  formatFindings,
  hasError,
  runChecks,
} from '../../checks/checks.ts';
import { systemChecks } from '../../checks/run.ts';
import {
  bootstrapNotice,
  type PreparedBootstrapPassword,
  prepareBootstrapPassword,
  removeStaleBootstrapPasswords,
} from '../bootstrap-password.ts';
import { CliError, type CliIo, cliConfig } from '../context.ts';
import { textBlock } from '../output.ts';
import { type Config, settingName } from '../../config/load.ts';
import { startMemoryRelease } from '../memory-release.ts';
import { startCommandMetricsListener } from '../metrics-listener.ts';
import { refuseUnusablePgBoss } from '../../logout/pgboss-transport.ts';
import type { StartReads } from '../../services.ts';

export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the OpenID Connect provider (migrations are applied automatically in development)')
    .action(async () => {
      const config = cliConfig(io);
      // What the configuration alone refuses (E004, …) refuses the start before the database is
      // opened: a development start would otherwise create the SQLite file and apply the migrations.
      // Its errors only: its warnings are judged without the applications, told by the full check below.
      const configured = runChecks(config, []).filter((finding) => finding.level === 'error');
      if (configured.length > 0) reportFindings(configured, io);
      let judged: Finding[] = [];
      // A database that takes no writes stops the start here, naming it and the cause: the server
      // would otherwise report ready while every sign-in and token answered 503.
      const app = await createApp(config, {
        forWriting: true,
        logger: { destination: io.logDestination('stdout') },
        // What refuses the start does so before it writes: a refused start leaves no signing key
        // (encrypted with this run's AA_OIDC_SECRET_KEY), no directory binding and no superuser,
        // so the start after the fix, with another secret key too, is a first start.
        beforeStartWrites: async (read) => {
          // A pg-boss schema that `aa-oidc migrate` would refuse stops the start, with migrate's
          // message (PostgreSQL): pg-boss would start on it without a word and lose logouts later.
          await refuseUnusablePgBoss(read.database);
          judged = await startFindings(config, read);
          if (hasError(judged)) reportFindings(judged, io);
        },
      });
      let metricsListener: MetricsListener | undefined;
      let address;
      let bootstrap: BootstrapLogin | null = null;
      let bootstrapFile = '';
      let stopRequested: Promise<string>;
      // Aborted when the start fails: `stopRequested` then stops listening for SIGTERM and SIGINT.
      const startFailed = new AbortController();
      try {
        // W011 judged the database before the start made its active key: the findings shown are of
        // the database as the server runs on it (a first start's, a restored backup's).
        reportFindings(
          judged.some((finding) => finding.id === 'W011') ? await startFindings(config, app) : judged,
          io,
        );
        // A start killed while bootstrapping may have left its one-time password beside the file.
        removeStaleBootstrapPasswords(config.dataDir, app.logger);
        metricsListener = await startCommandMetricsListener(app.metrics, config, app.logger);
        address = await app.listen().catch((error: unknown) => {
          throw listenFailure(error, config);
        });
        // First run: a superuser to sign in with, its password written to a file below (never logged).
        // Only once the port is bound: a start that cannot listen (port in use, a low port) creates
        // nobody, so the start that can is the one that creates the superuser and shows its file;
        // otherwise the one-time password would be lost with the failed start. Not before
        // `aa-oidc migrate` in production: serve runs meanwhile (/readyz says why) and the next
        // start creates the superuser.
        // The file is written before the superuser is committed: a data directory that cannot take it
        // (not writable, disk full) stops the start and creates nobody, rather than a superuser
        // whose password nobody will ever see. It is written beside its place and put there only
        // once the commit succeeded: a commit that fails leaves no file naming an account that does
        // not exist (and the next start writes a new one).
        // A SIGTERM or SIGINT from here on waits for the bootstrap to end, then stops the server as
        // usual: killed between the handover and the commit, a start would leave its one-time
        // password beside the file (removed only by a start that much later), and a committed
        // superuser without it. A second signal still kills at once.
        stopRequested = io.stopRequested(startFailed.signal);
        if ((await pendingMigrations(app.database.db, app.database.kind)).length === 0) {
          let prepared: PreparedBootstrapPassword | undefined;
          try {
            bootstrap = await app.directoryAdmin.ensureBootstrapSuperuser({
              handOver: (login) => {
                // A retry (a racing start's conflict) hands over a new login: the last one counts.
                prepared?.discard();
                prepared = undefined;
                prepared = prepareBootstrapPassword(config, login);
              },
            });
          } catch (error) {
            if (!prepared) throw error;
            prepared.discard();
            throw uncommittedBootstrap(error);
          }
          if (bootstrap && prepared) bootstrapFile = prepared.publish();
          else prepared?.discard();
        }
        // This process also delivers queued back-channel logouts (so may `aa-oidc worker`), unless
        // the deployment leaves that to dedicated workers.
        if (app.startedMigrated && config.logout.deliverInServe) app.logout.startWorker();
      } catch (error) {
        try {
          await metricsListener?.close();
          await app.close();
        } finally {
          // Nothing waits for a stop any more: a signal does again what it does to any process. Only
          // after the clean-up, so that a signal meanwhile still lets the start end with its reason.
          startFailed.abort();
        }
        throw error;
      }
      // Listened for (above, before the bootstrap) before the line that says the server is up: a
      // supervisor (or a test) may stop it as soon as it reads that line, and a SIGTERM before the
      // listener would kill the process outright instead of shutting it down.
      app.logger.info(
        {
          host: address.address,
          port: address.port,
          issuer: config.issuer,
          mode: config.mode,
          metrics: metricsListener?.url ?? null,
        },
        'aa-oidc listening',
      );
      io.stdout.write(
        `aa-oidc ${config.mode} server on http://${config.host}:${address.port} (issuer ${config.issuer})` +
          (metricsListener ? `, metrics on ${metricsListener.url}` : '') +
          '\n',
      );
      if (bootstrap) {
        const terminal = (io.stdout as NodeJS.WritableStream & { isTTY?: boolean }).isTTY === true;
        io.stdout.write(bootstrapNotice(bootstrap, bootstrapFile, config, terminal));
      }
      const memoryRelease = startMemoryRelease({ log: app.logger });
      // Started before `aa-oidc migrate`: once the migrations are in, stop (exit code 75) so that
      // the supervisor starts this server again to finish its start-up; /readyz says
      // restart_required meanwhile.
      const migratedMeanwhile = app.startedMigrated
        ? undefined
        : waitForMigrations(app.database.db, app.database.kind, MIGRATION_POLL_MS);
      // `aa-oidc directory rebind` while this server runs: it stops (E010), and a restart is refused
      // until it is configured with the directory the database is bound to.
      const own = app.directoryBinding.kind === 'bound' ? app.directoryBinding.binding : undefined;
      const rebound = own
        ? watchDirectoryBinding(app.database.db, own, io.bindingCheckMs ?? BINDING_CHECK_MS)
        : undefined;
      const signal = await Promise.race([
        stopRequested,
        ...(migratedMeanwhile ? [migratedMeanwhile.done] : []),
        ...(rebound && own ? [rebound.changed.then((recorded) => reboundMeanwhile(recorded, own))] : []),
      ]);
      migratedMeanwhile?.stop();
      rebound?.stop();
      memoryRelease.stop();
      if (signal === MIGRATED_MEANWHILE) {
        app.logger.warn(
          'the database was migrated after this server started: stopping so that it starts again and finishes its start-up (signing key, bootstrap superuser, back-channel logout delivery); systemd (Restart=on-failure) or a container supervisor starts it again',
        );
      } else if (typeof signal !== 'string') app.logger.error(signal.message);
      else app.logger.info({ signal }, 'shutting down');
      // The stop began, before the metrics listener's close is waited for (`Services.stopping`).
      app.stopping();
      await metricsListener?.close();
      await app.close();
      if (signal === MIGRATED_MEANWHILE)
        throw new CliError(
          'the database was migrated after this server started; it stopped to be started again (exit code 75)',
          EXIT_RESTART,
        );
      if (typeof signal !== 'string') throw new CliError(signal.message);
    });
}

/**
 * The system checks `serve` refuses to start on an error of (before the database is migrated, only
 * the configuration can be judged), with E010: a directory other than the one the database's user
 * ids belong to.
 */
async function startFindings(config: Config, read: StartReads): Promise<Finding[]> {
  if (!read.startedMigrated) return runChecks(config, []);
  return [
    ...(await systemChecks(config, read.applications, read.directory, read.keys)),
    ...directoryBindingChecks(read.directoryBinding),
  ];
}

/** Shows the findings on stderr, and refuses the start on an error. */
function reportFindings(findings: readonly Finding[], io: CliIo): void {
  if (findings.length > 0) io.stderr.write(textBlock(formatFindings(findings)));
  if (hasError(findings))
    throw new CliError('system check found errors; refusing to start (see `aa-oidc check`)');
}

const MIGRATION_POLL_MS = 5000;
const MIGRATED_MEANWHILE = 'migrated meanwhile';
/** EX_TEMPFAIL: stopped to be started again. */
const EXIT_RESTART = 75;

/** Resolves `done` once the database has no pending migration, looking every `intervalMs`. */
function waitForMigrations(
  db: Parameters<typeof pendingMigrations>[0],
  kind: Parameters<typeof pendingMigrations>[1],
  intervalMs: number,
): { done: Promise<string>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<string>((resolve) => {
    timer = setInterval(() => {
      pendingMigrations(db, kind).then(
        (pending) => {
          if (pending.length === 0) resolve(MIGRATED_MEANWHILE);
        },
        () => undefined, // unreachable for now: /readyz says so; look again later
      );
    }, intervalMs);
  });
  return { done, stop: () => clearInterval(timer) };
}

/**
 * The bootstrap superuser's commit failed after its login was handed over (a constraint checked at
 * commit, a connection lost): its password file was removed. A commit whose answer was lost may
 * still have gone through, hence the way to tell.
 */
function uncommittedBootstrap(error: unknown): CliError {
  const cause = error instanceof Error ? error.message : String(error);
  return new CliError(
    `could not commit the bootstrap superuser (${cause}), so none was created and no password file was left; ` +
      'fix the database, then start again (if `aa-oidc user list` shows a superuser anyway, ' +
      'set its password with aa-oidc user set-password NAME)',
  );
}

/** A failure to bind the HTTP port, as one line naming the setting to change. */
export function listenFailure(error: unknown, config: Pick<Config, 'host' | 'port' | 'origins'>): Error {
  const where = `cannot listen on ${config.host}:${config.port}`;
  const port = settingName(config.origins, 'port');
  const host = settingName(config.origins, 'host');
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new CliError(
        `${where}: the port is already in use (by another aa-oidc or another program); stop that or choose another port with ${port}`,
      );
    case 'EACCES':
      return new CliError(
        config.port < 1024
          ? `${where}: permission denied, ports below 1024 need privileges; choose a port from 1024 up with ${port} and let the reverse proxy listen on 80 and 443`
          : `${where}: permission denied; choose another port with ${port} or another address with ${host}`,
      );
    case 'EADDRNOTAVAIL':
      return new CliError(`${where}: ${config.host} is not an address of this machine; fix ${host}`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(`${where}: the host name ${config.host} does not resolve; fix ${host}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}
