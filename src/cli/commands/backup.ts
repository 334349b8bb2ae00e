import path from 'node:path';
import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import { countApplications } from '../../applications/store.ts';
import { BackupError, type BackupCounts, backupSqlite, pgDumpCommand } from '../../db/backup.ts';
import { pendingMigrations } from '../../db/migrate.ts';
import { MIGRATIONS } from '../../db/migrations/index.ts';
import type { Database } from '../../db/schema.ts';
import { countUsers } from '../../directory/builtin/queries.ts';
import { countSigningKeys } from '../../keys/queries.ts';
import { countLiveTokens } from '../../tokens/store.ts';
import { CliError, type CliIo, cliConfig, withDatabase } from '../context.ts';
import { fileOption } from '../option-values.ts';
import { quotedInput } from '../output.ts';

/**
 * `aa-oidc backup --to FILE`: an online, consistent copy of the SQLite database while `serve` runs.
 * PostgreSQL is backed up with its own tools (pg_dump); the command says how.
 */
export function registerBackup(program: Command, io: CliIo): void {
  program
    .command('backup')
    .description('copy the SQLite database to a new file while the server runs (PostgreSQL: use pg_dump)')
    .addOption(fileOption('--to <file>', 'the file to write (must not exist)').makeOptionMandatory())
    .action(async (options: { to: string }) => {
      const config = cliConfig(io, { quiet: true });
      if (config.database.kind === 'postgres') {
        throw new CliError(
          `on PostgreSQL, back up with pg_dump (the password from ~/.pgpass or PGPASSWORD): ${pgDumpCommand(config.database.url)}`,
          2,
        );
      }
      // path.resolve would make "" the working folder, and a name of spaces is a slip, not a file.
      if (options.to.trim() === '')
        throw new CliError(
          `--to needs the name of a new file to write the copy to (got ${quotedInput(options.to)})`,
        );
      // A relative name is in the command's working folder, as the configuration's relative paths are.
      const to = path.resolve(io.cwd, options.to);
      const source = config.database.path;
      // A database with pending migrations is copied as it is: the backup an upgrade takes before
      // `aa-oidc migrate` is often made with the new release already installed.
      const { report, pending } = await withDatabase(
        config,
        async (database) => {
          const pending = await pendingMigrations(database.db, database.kind);
          if (pending.length === Object.keys(MIGRATIONS).length)
            throw new CliError(
              `${source} holds no aa-oidc database (no migration applied); nothing to back up`,
            );
          const report = await backupSqlite(database, to, backupCounts).catch((error: unknown) => {
            throw error instanceof BackupError ? new CliError(error.message) : error;
          });
          return { report, pending };
        },
        { pendingMigrations: 'allow' },
      );
      const { applications, users, signingKeys, liveTokens } = report.counts;
      io.stdout.write(
        `backed up ${source} to ${report.file} (${report.bytes} bytes, integrity ok): ` +
          `${applications} application(s), ${users} user(s), ${signingKeys} signing key(s), ${liveTokens} unexpired token(s)\n`,
      );
      if (pending.length > 0)
        io.stdout.write(
          `the copy is as migrated as the database: ${pending.length} migration(s) of this release not applied yet (${pending.join(', ')}); \`aa-oidc migrate\` applies them\n`,
        );
    });
}

/** The rows an operator checks after a restore, each counted by its table's owner. */
async function backupCounts(db: Kysely<Database>): Promise<BackupCounts> {
  return {
    applications: await countApplications(db),
    users: await countUsers(db),
    signingKeys: await countSigningKeys(db),
    liveTokens: await countLiveTokens(db, Date.now()),
  };
}
