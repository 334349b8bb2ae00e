import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { connectDatabase, connectOptionsFor } from '../../db/connect.ts';
import {
  migrateToLatest,
  pendingMigrations,
  refuseForeignDatabase,
  refuseMigrationsThatWouldStop,
  refuseNewerDatabase,
} from '../../db/migrate.ts';
import { MIGRATIONS } from '../../db/migrations/index.ts';
import {
  BCL_QUEUE,
  migratePgBoss,
  PGBOSS_SCHEMA,
  pgBossInstall,
  type UsablePgBossInstall,
  usablePgBossInstall,
  pgBossSchemaVersion,
} from '../../logout/pgboss-transport.ts';
import { leaseMs } from '../../logout/service.ts';
import { assertNever } from '../../util/assert-never.ts';
import { type CliIo, cliConfig } from '../context.ts';

export function registerMigrate(program: Command, io: CliIo): void {
  program
    .command('migrate')
    .description('apply every pending database migration (forward-only)')
    .option(
      '--dry-run',
      'list the pending migrations and change nothing (a missing SQLite file is not created); fails, naming it, on what a pending migration would stop at',
    )
    .action(async (options: { dryRun?: boolean }) => {
      // A dry run writes nothing: not the development secret key, not an empty SQLite file.
      const config = cliConfig(io, { createDevSecretKey: !options.dryRun });
      if (
        options.dryRun &&
        config.database.kind === 'sqlite' &&
        config.database.path !== ':memory:' &&
        !existsSync(config.database.path)
      ) {
        const all = Object.keys(MIGRATIONS).sort();
        io.stdout.write(
          `SQLite database ${config.database.path} does not exist yet; migrate would create it and apply ${all.length} migration(s): ${all.join(', ')}\n`,
        );
        return;
      }
      // No query time limit: a migration of a large table may take long. A database that takes no
      // writes is refused up front, naming it and the cause (a dry run only reads).
      const database = await connectDatabase(config.database, {
        ...connectOptionsFor(config),
        queryTimeoutMs: 0,
        forWriting: !options.dryRun,
      });
      try {
        if (options.dryRun) {
          // What migrate would refuse, the dry run refuses too.
          await refuseNewerDatabase(database.db);
          await refuseForeignDatabase(database.db, database.kind);
          const pgBoss =
            database.kind === 'postgres' ? usablePgBossInstall(await pgBossInstall(database)) : null;
          const pending = await pendingMigrations(database.db, database.kind);
          // And what a pending migration would stop at (data it cannot migrate), in migrate's words.
          await refuseMigrationsThatWouldStop(database.db, database.kind, pending);
          io.stdout.write(
            pending.length === 0
              ? 'database is up to date; nothing would be applied\n'
              : `${pending.length} pending migration(s) would be applied: ${pending.join(', ')}\n`,
          );
          if (pgBoss) io.stdout.write(`${pgBossDryRun(pgBoss)}\n`);
          return;
        }
        // A pg-boss schema pg-boss would leave as it is is refused before anything is applied, and so
        // is one this role may not read (as the dry run does): not `refuseUnusablePgBoss`, which lets
        // that pass for serve, since migrate would then apply aa-oidc's migrations and fail at pg-boss's.
        if (database.kind === 'postgres') usablePgBossInstall(await pgBossInstall(database));
        const applied = await migrateToLatest(database.db, database.kind);
        io.stdout.write(
          applied.length === 0
            ? 'database is up to date\n'
            : `applied ${applied.length} migration(s): ${applied.join(', ')}\n`,
        );
        // PostgreSQL: the back-channel logout jobs live in pg-boss's own schema.
        if (database.kind === 'postgres') {
          await migratePgBoss(database, leaseMs(config) / 1000);
          io.stdout.write(`pg-boss schema "${PGBOSS_SCHEMA}" and queue "${BCL_QUEUE}" are up to date\n`);
        }
      } finally {
        await database.close();
      }
    });
}

/** What `migrate` would do to pg-boss's schema, for the dry run. */
function pgBossDryRun(install: UsablePgBossInstall): string {
  const needed = pgBossSchemaVersion();
  const schema = `pg-boss schema "${PGBOSS_SCHEMA}"`;
  switch (install.kind) {
    case 'absent':
      return `${schema} is not installed; it would be (version ${needed})`;
    case 'empty':
      return `${schema} exists but is empty; pg-boss would be installed in it (version ${needed})`;
    case 'installed':
      return install.version < needed
        ? `${schema} is at version ${install.version}; it would be upgraded to ${needed}`
        : `${schema} is up to date (version ${install.version})`;
    default:
      return assertNever(install);
  }
}
