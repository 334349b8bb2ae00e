import type { Command } from 'commander';
import { createServices } from '../../services.ts';
import { type CliIo, cliConfig } from '../context.ts';

/**
 * `aa-oidc worker`: the back-channel logout worker alone (section P: `serve` instances may leave
 * delivery to dedicated workers; both claim jobs with a lease, so any number may run).
 */
export function registerWorker(program: Command, io: CliIo): void {
  program
    .command('worker')
    .description('deliver queued back-channel logouts (also done inside serve) until SIGTERM')
    .action(async () => {
      const config = cliConfig();
      const services = await createServices(config);
      const worker = services.logout.startWorker();
      services.logger.info({ mode: config.mode }, 'aa-oidc back-channel logout worker started');
      io.stdout.write(`aa-oidc back-channel logout worker (${config.mode})\n`);
      // The worker's timers do not keep the process alive; this does, until a signal.
      const keepAlive = setInterval(() => undefined, 1 << 30);
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          services.logger.info({ signal }, 'worker shutting down');
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      clearInterval(keepAlive);
      await worker.stop();
      await services.close();
    });
}
