import type { Command } from 'commander';
import { createServices } from '../../services.ts';
import { pendingMigrations } from '../../db/migrate.ts';
import { refuseUnusablePgBoss } from '../../logout/pgboss-transport.ts';
import { directoryBindingChecks, formatFindings, hasError } from '../../checks/checks.ts';
import { BINDING_CHECK_MS, reboundMeanwhile, watchDirectoryBinding } from '../../directory/binding.ts';
import { systemChecks } from '../../checks/run.ts';
import { CliError, type CliIo, cliConfig, refuseMissingSqliteFile } from '../context.ts';
import { textBlock } from '../output.ts';
import { startMemoryRelease } from '../memory-release.ts';
import { startCommandMetricsListener, WORKER_METRICS_PORT } from '../metrics-listener.ts';
import { registryOf, WORKER_METRIC_NAMES } from '../../metrics/registry.ts';

/** The system checks about where back-channel logouts may be delivered. */
const WORKER_CHECKS: ReadonlySet<string> = new Set(['E006', 'W005']);

/**
 * `aa-oidc worker`: the back-channel logout worker alone (when several instances run, `serve` may
 * leave delivery to dedicated workers; both claim jobs with a lease, so any number may run), with a
 * metrics listener of its own, set as `serve`'s is (but on 9465 when no port is set).
 */
export function registerWorker(program: Command, io: CliIo): void {
  program
    .command('worker')
    .description('deliver queued back-channel logouts (also done inside serve) until SIGTERM')
    .action(async () => {
      const config = cliConfig(io);
      refuseMissingSqliteFile(config);
      const services = await createServices(config, {
        forWriting: true,
        logger: { destination: io.logDestination('stdout') },
        // What refuses the worker does so before it writes (the signing key, the directory binding).
        beforeStartWrites: async (read) => {
          // A pg-boss schema that `aa-oidc migrate` would refuse stops the worker, with migrate's
          // message (PostgreSQL): pg-boss would start on it without a word and lose logouts later.
          await refuseUnusablePgBoss(read.database);
          const pending = await pendingMigrations(read.database.db, read.database.kind);
          if (pending.length > 0)
            throw new CliError(
              `the database has ${pending.length} pending migration(s); run \`aa-oidc migrate\` first`,
            );
          // Private targets allowed in production (E006) refuse the worker as they refuse `serve`;
          // the checks about serving HTTP are not the worker's. So does another directory than the
          // one the database's user ids belong to (E010).
          const findings = [
            ...(await systemChecks(config, read.applications, read.directory, read.keys)).filter((finding) =>
              WORKER_CHECKS.has(finding.id),
            ),
            ...directoryBindingChecks(read.directoryBinding),
          ];
          if (findings.length > 0) io.stderr.write(textBlock(formatFindings(findings)));
          if (hasError(findings))
            throw new CliError('system check found errors; refusing to start (see `aa-oidc check`)');
        },
      });
      // Its own registry: the process metrics and the aa-oidc metrics a worker moves, none of the
      // provider's (they would only ever read zero here). Not on serve's default port unless told.
      const metricsListener = await startCommandMetricsListener(
        { registry: registryOf(services.metrics, WORKER_METRIC_NAMES) },
        config,
        services.logger,
        { defaultPort: WORKER_METRICS_PORT },
      ).catch(async (error: unknown) => {
        await services.close();
        throw error;
      });
      const worker = services.logout.startWorker();
      services.logger.info(
        { mode: config.mode, metrics: metricsListener?.url ?? null },
        'aa-oidc back-channel logout worker started',
      );
      io.stdout.write(
        `aa-oidc back-channel logout worker (${config.mode})` +
          (metricsListener ? `, metrics on ${metricsListener.url}` : '') +
          '\n',
      );
      // The worker's timers do not keep the process alive; this does, until a stop request.
      const keepAlive = setInterval(() => undefined, 1 << 30);
      const memoryRelease = startMemoryRelease({ log: services.logger });
      // `aa-oidc directory rebind` while this worker runs: it stops (E010), as `serve` does.
      const own = services.directoryBinding.kind === 'bound' ? services.directoryBinding.binding : undefined;
      const rebound = own
        ? watchDirectoryBinding(services.database.db, own, io.bindingCheckMs ?? BINDING_CHECK_MS)
        : undefined;
      const signal = await Promise.race([
        io.stopRequested(),
        ...(rebound && own ? [rebound.changed.then((recorded) => reboundMeanwhile(recorded, own))] : []),
      ]);
      rebound?.stop();
      memoryRelease.stop();
      if (typeof signal === 'string') services.logger.info({ signal }, 'worker shutting down');
      else services.logger.error(signal.message);
      clearInterval(keepAlive);
      // The stop began: what fails from here on as its doing is logged as such (`Services.stopping`).
      services.stopping();
      await worker.stop();
      await metricsListener?.close();
      await services.close();
      if (typeof signal !== 'string') throw new CliError(signal.message);
    });
}
