import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import type { Logger } from '../../logging/logger.ts';
import type { PasswordAuthenticator } from '../authenticator.ts';
import type { ChangePublisher, Directory } from '../port.ts';
import { catalogWrites } from './catalog.ts';
import { createChangeRunner } from './change.ts';
import { builtinPasswordAuthenticator, loginOperations } from './login.ts';
import { builtinDirectoryReader, keepableProfiles, recordReads } from './reads.ts';
import type { DirectoryAdmin } from './types.ts';
import { userWrites } from './users.ts';

/**
 * The built-in directory's admin interface over its tables in aa-oidc's database. `publisher`
 * receives the port's changes inside each change's unit of work (the composition root passes the
 * process's change feed); without one, changes reach only the directory's own subscribers.
 */
export function createDirectory(
  db: Kysely<Database>,
  logger?: Logger,
  publisher?: Pick<ChangePublisher, 'deliverWithin'>,
): DirectoryAdmin {
  const changes = createChangeRunner(db, publisher, logger);
  return {
    subscribe: changes.subscribe,
    afterCommit: changes.afterCommit,
    ...userWrites(changes),
    ...catalogWrites(changes),
    ...loginOperations(db, changes, logger),
    ...recordReads(db),
  };
}

/** The built-in directory: the port everyone reads, its admin interface, its password sign-in. */
export interface BuiltinDirectory {
  directory: Directory;
  admin: DirectoryAdmin;
  authenticator: PasswordAuthenticator;
}

export function createBuiltinDirectory(
  db: Kysely<Database>,
  publisher: Pick<ChangePublisher, 'deliverWithin'>,
  logger?: Logger,
): BuiltinDirectory {
  const admin = createDirectory(db, logger, publisher);
  return {
    directory: { ...builtinDirectoryReader(db), keepable: keepableProfiles(db, admin.afterCommit) },
    admin,
    authenticator: builtinPasswordAuthenticator(admin),
  };
}
