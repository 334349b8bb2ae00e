import type { Command } from 'commander';
import { openDatabase } from '../../db/connect.ts';
import { migrateToLatest } from '../../db/migrate.ts';
import { type CliIo, cliConfig } from '../context.ts';

export function registerMigrate(program: Command, io: CliIo): void {
  program
    .command('migrate')
    .description('apply every pending database migration (forward-only)')
    .action(async () => {
      const config = cliConfig();
      const database = openDatabase(config.database);
      try {
        const applied = await migrateToLatest(database.db, database.kind);
        io.stdout.write(
          applied.length === 0
            ? 'database is up to date\n'
            : `applied ${applied.length} migration(s): ${applied.join(', ')}\n`,
        );
      } finally {
        await database.close();
      }
    });
}
