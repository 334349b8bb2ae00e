import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { type Config, settingName } from '../config/load.ts';
import type { DatabaseHandle } from '../db/connect.ts';
import { describeDatabase } from '../db/errors.ts';
import type { Database } from '../db/schema.ts';
import { fileNotWritable, whyNotWritable } from '../db/writable.ts';
import { hasActiveSuperuser } from '../directory/builtin/queries.ts';
import { judgePgBossInstall, PGBOSS_SCHEMA, readablePgBossInstall } from '../logout/pgboss-transport.ts';
import type { Finding } from '../checks/checks.ts';

/** What the storage check reads from the configuration. */
export type StorageConfig = Pick<Config, 'dataDir' | 'origins' | 'database'> & {
  directory: Pick<Config['directory'], 'source'>;
};

/**
 * W012: a place `serve` writes that this user may not write, so that the start would stop: the
 * SQLite file and its folder (SQLite creates its -wal and -shm files there), and the data directory
 * while the built-in directory has no active superuser (the first start writes the bootstrap
 * password file there). Judged with access(2) as the user running the check: nothing is written.
 * On PostgreSQL, judged for the role the check connects as: a server that takes no writes (a standby,
 * or default_transaction_read_only on), which stops the start too, and tables `serve` writes that
 * this role may not INSERT into, UPDATE or DELETE from (or whose schema it may not use): each write
 * there fails with permission denied, the start's own (a signing key, the bootstrap superuser) too.
 */
export async function storageChecks(config: StorageConfig, database: DatabaseHandle): Promise<Finding[]> {
  const findings: Finding[] = [];
  const warn = (message: string, hint: string) =>
    findings.push({ id: 'W012', level: 'warning', message, hint });
  const { database: target } = config;
  if (target.kind === 'sqlite' && database.sqlite && !database.sqlite.memory) {
    const reason = await whyNotWritable(database);
    if (reason !== undefined)
      warn(
        `serve cannot write ${describeDatabase(target)} and would refuse to start: ${reason}`,
        `${reason.includes('this user') ? 'run aa-oidc check as the user serve runs as: it judges for the user running it' : 'fix that, then run aa-oidc check again'}`,
      );
    else {
      const folder = path.dirname(target.path);
      const folderReason = await whyNotWritableFolder(folder);
      if (folderReason !== undefined)
        warn(
          `serve cannot create the -wal and -shm files of ${describeDatabase(target)} in its folder ${folder}: ${folderReason}`,
          `run aa-oidc check as the user serve runs as; ${writeAccessHint(folder)}`,
        );
    }
  }
  if (target.kind === 'postgres') {
    const setting = settingName(config.origins, 'databaseUrl');
    const reason = await whyNotWritable(database, { setting });
    if (reason !== undefined)
      warn(
        `serve cannot write ${describeDatabase(target)} and would refuse to start: ${reason}`,
        `aa-oidc check judges for the role it connects as: run it with serve's ${setting}`,
      );
    const missing = await missingWritePrivileges(database);
    if (missing !== undefined) {
      const { role, tables, schemas } = missing;
      const shown = tables.slice(0, SHOWN_TABLES).map((table) => `${table.name} (${table.lacks.join(', ')})`);
      warn(
        `the role ${role} may not write ${tables.length} table(s) serve writes in ${describeDatabase(target)}: ` +
          `${shown.join(', ')}${tables.length > SHOWN_TABLES ? ', …' : ''}; serve's writes there fail (permission denied), at its start or later`,
        `as the owner of the tables: ${schemas.map((schema) => `GRANT USAGE ON SCHEMA ${schema} TO ${role}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role};`).join(' ')} ` +
          `(aa-oidc check judges for the role it connects as: run it with serve's ${setting})`,
      );
    }
  }
  if (config.directory.source !== 'alliance-auth' && !(await hasActiveSuperuser(database.db))) {
    const { dataDir } = config;
    const existing = await nearestExisting(dataDir);
    const reason = await whyNotWritableFolder(existing);
    if (reason !== undefined)
      warn(
        `no superuser exists, and serve cannot write the bootstrap superuser's one-time password to the data directory ${dataDir} (${settingName(config.origins, 'dataDir')})${existing === dataDir ? '' : `, which it would create in ${existing}`}: ${reason}; its start would stop`,
        `run aa-oidc check as the user serve runs as; ${writeAccessHint(existing)}, or create a superuser first: aa-oidc user create NAME --superuser`,
      );
  }
  return findings;
}

/**
 * E008 (PostgreSQL): a pg-boss schema that pg-boss would leave as it is (objects but no version
 * table, or a version table without a row), which `aa-oidc migrate`, `serve` and `worker` refuse,
 * judged as they judge it. Nothing to judge on SQLite, nor for a role that may not read that schema
 * (W012 names what it lacks).
 */
export async function pgBossChecks(database: DatabaseHandle): Promise<Finding[]> {
  const install = await readablePgBossInstall(database);
  const judged = install && judgePgBossInstall(install);
  if (judged?.kind !== 'unusable') return [];
  return [
    {
      id: 'E008',
      level: 'error',
      message: `${judged.problem}; aa-oidc migrate, serve and worker refuse it`,
      hint: judged.remedy,
    },
  ];
}

/** The tables of aa-oidc's schema, each written by `serve` (listed against the schema's type). */
const OWN_TABLES = Object.keys({
  state: true,
  auth_group: true,
  app_user: true,
  user_group: true,
  lifecycle_event: true,
  signing_key: true,
  application: true,
  application_whitelist: true,
  oidc_payload: true,
  issued_code: true,
  login_failure: true,
  bcl_job: true,
  bcl_delivery_attempt: true,
  aa_user_fingerprint: true,
  aa_poll_lease: true,
  aa_catalog_name: true,
  sign_in_generation: true,
  audit_event: true,
  totp_enrolment: true,
  recovery_code: true,
  change_epoch: true,
  change_log: true,
  directory_binding: true,
} satisfies Record<keyof Database, true>);

/** pg-boss's table of jobs: every change that logs a user out of applications queues its jobs there. */
const PGBOSS_JOB_TABLE = 'job';

/** The tables a warning names before it says `…`. */
const SHOWN_TABLES = 5;

interface TableNotWritable {
  /** Schema-qualified and quoted as SQL needs it. */
  name: string;
  /** What the role lacks: USAGE (on the schema), INSERT, UPDATE, DELETE. */
  lacks: string[];
}

/**
 * The tables `serve` writes that the connection's role may not write (its privileges, its schema's
 * USAGE): aa-oidc's in the schema its migrations wrote (the first of the search path) and pg-boss's
 * job table; undefined when it may write them all. A table that is missing counts for nothing here
 * (the check of pending migrations names that).
 */
async function missingWritePrivileges(
  database: DatabaseHandle,
): Promise<{ role: string; tables: TableNotWritable[]; schemas: string[] } | undefined> {
  const { rows } = await sql<{
    role: string;
    schema: string;
    name: string;
    usage: boolean;
    insert: boolean;
    update: boolean;
    delete: boolean;
  }>`select quote_ident(current_user) as role, quote_ident(n.nspname) as schema,
        quote_ident(n.nspname) || '.' || quote_ident(c.relname) as name,
        has_schema_privilege(n.oid, 'USAGE') as usage,
        has_table_privilege(c.oid, 'INSERT') as insert,
        has_table_privilege(c.oid, 'UPDATE') as update,
        has_table_privilege(c.oid, 'DELETE') as delete
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p')
        and ((n.nspname = current_schema() and c.relname = any(${OWN_TABLES}::text[]))
          or (n.nspname = ${PGBOSS_SCHEMA} and c.relname = ${PGBOSS_JOB_TABLE}))
      order by n.nspname = current_schema() desc, c.relname`.execute(database.db);
  const tables = rows.flatMap((row): TableNotWritable[] => {
    const lacks = [
      ...(row.usage ? [] : ['USAGE on its schema']),
      ...(row.insert ? [] : ['INSERT']),
      ...(row.update ? [] : ['UPDATE']),
      ...(row.delete ? [] : ['DELETE']),
    ];
    return lacks.length > 0 ? [{ name: row.name, lacks }] : [];
  });
  if (tables.length === 0) return undefined;
  const schemas = [
    ...new Set(
      rows.filter((row) => tables.some((table) => table.name === row.name)).map((row) => row.schema),
    ),
  ];
  return { role: rows[0]!.role, tables, schemas };
}

/** Why this user may not create files in `folder`, or undefined when it may. */
async function whyNotWritableFolder(folder: string): Promise<string | undefined> {
  try {
    await access(folder, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return `this user (${currentUser()}) may not create files there`;
    return fileNotWritable(code) ?? (error instanceof Error ? error.message : String(error));
  }
}

/** `target` when it exists, else the closest folder above it that does (where it would be made). */
async function nearestExisting(target: string): Promise<string> {
  for (let folder = target; ; folder = path.dirname(folder)) {
    try {
      await access(folder, constants.F_OK);
      return folder;
    } catch {
      if (folder === path.dirname(folder)) return folder;
    }
  }
}

function writeAccessHint(file: string): string {
  return `give that user write access to ${file} (chown it to that user, or chmod u+w)`;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}
