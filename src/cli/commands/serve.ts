import type { Command } from 'commander';
import { createApp } from '../../app.ts';
import { type CliIo, cliConfig } from '../context.ts';

export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the OpenID Connect provider (migrations are applied automatically in development)')
    .action(async () => {
      const config = cliConfig();
      const app = await createApp(config);
      const address = await app.listen();
      app.logger.info(
        { host: address.address, port: address.port, issuer: config.issuer, mode: config.mode },
        'aa-oidc listening',
      );
      io.stdout.write(
        `aa-oidc ${config.mode} server on http://${config.host}:${address.port} (issuer ${config.issuer})\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          app.logger.info({ signal }, 'shutting down');
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await app.close();
    });
}
