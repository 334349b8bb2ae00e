import type { Command } from 'commander';
import { connectDatabase, connectOptionsFor } from '../../db/connect.ts';
import { migrateToLatest } from '../../db/migrate.ts';
import { BCL_QUEUE, migratePgBoss, PGBOSS_SCHEMA } from '../../logout/pgboss-transport.ts';
import { leaseMs } from '../../logout/service.ts';
import { type CliIo, cliConfig } from '../context.ts';

export function registerMigrate(program: Command, io: CliIo): void {
  program
    .command('migrate')
    .description('apply every pending database migration (forward-only)')
    .action(async () => {
      const config = cliConfig(io);
      // No query time limit: a migration of a large table may take long.
      const database = await connectDatabase(config.database, {
        ...connectOptionsFor(config),
        queryTimeoutMs: 0,
      });
      try {
        const applied = await migrateToLatest(database.db, database.kind);
        io.stdout.write(
          applied.length === 0
            ? 'database is up to date\n'
            : `applied ${applied.length} migration(s): ${applied.join(', ')}\n`,
        );
        // PostgreSQL: the back-channel logout jobs live in pg-boss's own schema (section G).
        if (database.kind === 'postgres') {
          await migratePgBoss(database, leaseMs(config) / 1000);
          io.stdout.write(`pg-boss schema "${PGBOSS_SCHEMA}" and queue "${BCL_QUEUE}" are up to date\n`);
        }
      } finally {
        await database.close();
      }
    });
}
