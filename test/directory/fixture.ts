import type { TestContext } from 'node:test';
import { type Kysely, type KyselyPlugin } from 'kysely';
import type { Database, LifecycleEventRow } from '../../src/db/schema.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import type { DirectoryAdmin } from '../../src/directory/builtin/types.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { testConfig } from '../helpers/config.ts';
import { connect, createTestDatabase } from '../helpers/database.ts';

export interface DirectoryFixture {
  db: Kysely<Database>;
  directory: DirectoryAdmin;
  /** Every line the directory's logger wrote (level trace). */
  logLines: string[];
  /** The `lifecycle_event` rows, oldest first. */
  events(): Promise<LifecycleEventRow[]>;
  /** How many SQL statements ran through `db` since the last call. */
  takeQueryCount(): number;
}

/** A fresh migrated database with a directory on it, dropped when the test ends. */
export async function directoryFixture(t: TestContext): Promise<DirectoryFixture> {
  const database = await createTestDatabase({ migrated: true });
  const config = testConfig(database);
  const handle = connect(database);
  t.after(async () => {
    await handle.close();
    await database.drop();
  });
  let queries = 0;
  const counter: KyselyPlugin = {
    transformQuery(args) {
      queries += 1;
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  };
  const db = handle.db.withPlugin(counter);
  const logLines: string[] = [];
  const logger = createLogger(
    { logging: { ...config.logging, level: 'trace' } },
    { destination: { write: (line: string) => void logLines.push(line) } },
  );
  return {
    db,
    directory: createDirectory(db, logger),
    logLines,
    events: () => handle.db.selectFrom('lifecycle_event').selectAll().orderBy('id').execute(),
    takeQueryCount() {
      const count = queries;
      queries = 0;
      return count;
    },
  };
}
