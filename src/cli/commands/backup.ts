import type { Command } from 'commander';
import { BackupError, backupSqlite, pgDumpCommand } from '../../db/backup.ts';
import { CliError, type CliIo, cliConfig, withDatabase } from '../context.ts';

/**
 * `aa-oidc backup --to FILE`: an online, consistent copy of the SQLite database while `serve` runs.
 * PostgreSQL is backed up with its own tools (pg_dump); the command says how.
 */
export function registerBackup(program: Command, io: CliIo): void {
  program
    .command('backup')
    .description('copy the SQLite database to a new file while the server runs (PostgreSQL: use pg_dump)')
    .requiredOption('--to <file>', 'the file to write (must not exist)')
    .action(async (options: { to: string }) => {
      const config = cliConfig(io, { quiet: true });
      if (config.database.kind === 'postgres') {
        throw new CliError(
          `on PostgreSQL, back up with pg_dump (the password from ~/.pgpass or PGPASSWORD): ${pgDumpCommand(config.database.url)}`,
          2,
        );
      }
      const report = await withDatabase(config, (database) =>
        backupSqlite(database, options.to).catch((error: unknown) => {
          throw error instanceof BackupError ? new CliError(error.message) : error;
        }),
      );
      const { applications, users, signingKeys, liveTokens } = report.counts;
      io.stdout.write(
        `backed up ${config.database.path} to ${report.file} (${report.bytes} bytes, integrity ok): ` +
          `${applications} application(s), ${users} user(s), ${signingKeys} signing key(s), ${liveTokens} unexpired token(s)\n`,
      );
    });
}
