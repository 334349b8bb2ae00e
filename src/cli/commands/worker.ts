import type { Command } from 'commander';
import { createServices } from '../../services.ts';
import { pendingMigrations } from '../../db/migrate.ts';
import { CliError, type CliIo, cliConfig } from '../context.ts';

/**
 * `aa-oidc worker`: the back-channel logout worker alone (when several instances run, `serve` may
 * leave delivery to dedicated workers; both claim jobs with a lease, so any number may run).
 */
export function registerWorker(program: Command, io: CliIo): void {
  program
    .command('worker')
    .description('deliver queued back-channel logouts (also done inside serve) until SIGTERM')
    .action(async () => {
      const config = cliConfig(io);
      const services = await createServices(config, { logger: { destination: io.logDestination('stdout') } });
      const pending = await pendingMigrations(services.database.db, services.database.kind);
      if (pending.length > 0) {
        await services.close();
        throw new CliError(
          `the database has ${pending.length} pending migration(s); run \`aa-oidc migrate\` first`,
        );
      }
      const worker = services.logout.startWorker();
      services.logger.info({ mode: config.mode }, 'aa-oidc back-channel logout worker started');
      io.stdout.write(`aa-oidc back-channel logout worker (${config.mode})\n`);
      // The worker's timers do not keep the process alive; this does, until a stop request.
      const keepAlive = setInterval(() => undefined, 1 << 30);
      const signal = await io.stopRequested();
      services.logger.info({ signal }, 'worker shutting down');
      clearInterval(keepAlive);
      await worker.stop();
      await services.close();
    });
}
