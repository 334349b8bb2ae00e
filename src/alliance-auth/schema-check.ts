import { sql } from 'kysely';
import type { AllianceAuthDatabaseKind } from './database.ts';
import { accessPermissionExists } from './access-permission.ts';
import type { AaDb } from './schema.ts';
import {
  ALLIANCE_AUTH_MINIMUMS,
  type DatabaseServer,
  describeVersion,
  judgeServerVersion,
  type MinimumVersion,
  type ServerVersion,
  shownVersionText,
} from '../db/server-version.ts';
import { assertNever } from '../util/assert-never.ts';
import { readUsernameCollation } from './throttle-key.ts';

/**
 * The check `serve` runs before it trusts Alliance Auth's database: Django's migration record says
 * which Alliance Auth the schema belongs to, and the information schema says whether every column
 * aa-oidc reads is there. An older schema is refused with the migration found and the one needed,
 * and so is a database server older than aa-oidc supports (`ALLIANCE_AUTH_MINIMUMS`), with the
 * version it answered and the one needed.
 */

/** The oldest migration per app aa-oidc reads correctly (Alliance Auth 4.0). */
export const MINIMUM_MIGRATIONS: Readonly<Record<string, string>> = {
  // The profile as AA 4 left it (theme, language choices).
  authentication: '0022_userprofile_theme',
  // Faction ids and names on characters.
  eveonline: '0015_factions',
  // Django 4.2's auth tables.
  auth: '0012_alter_user_first_name_max_length',
};

/** The newest migration per app known to keep these tables as read here (AA 5's language choices). */
export const NEWEST_KNOWN_MIGRATIONS: Readonly<Record<string, string>> = {
  authentication: '0024_alter_userprofile_language',
};

/** Every column aa-oidc reads, per table. */
export const COLUMNS_READ: Readonly<Record<string, readonly string[]>> = {
  auth_user: [
    'id',
    'password',
    'last_login',
    'is_superuser',
    'username',
    'email',
    'is_active',
    'date_joined',
  ],
  auth_group: ['id', 'name'],
  auth_user_groups: ['id', 'user_id', 'group_id'],
  auth_permission: ['id', 'content_type_id', 'codename'],
  django_content_type: ['id', 'app_label'],
  auth_user_user_permissions: ['id', 'user_id', 'permission_id'],
  auth_group_permissions: ['id', 'group_id', 'permission_id'],
  authentication_state: ['id', 'name', 'priority'],
  authentication_state_permissions: ['id', 'state_id', 'permission_id'],
  authentication_userprofile: ['id', 'user_id', 'main_character_id', 'state_id', 'language'],
  authentication_characterownership: ['id', 'character_id', 'owner_hash', 'user_id'],
  eveonline_evecharacter: [
    'id',
    'character_id',
    'character_name',
    'corporation_id',
    'corporation_name',
    'corporation_ticker',
    'alliance_id',
    'alliance_name',
    'alliance_ticker',
    'faction_id',
    'faction_name',
  ],
};

export interface SchemaReport {
  /** Problems that make the schema unusable: `serve` refuses to start on any. */
  errors: string[];
  /** Worth an operator's attention, not a reason to refuse. */
  warnings: string[];
  /** The newest applied migration per app that matters here. */
  heads: Record<string, string>;
  /** The database server's version, when `select version()` answered one this release reads. */
  server?: ServerVersion;
}

/** The servers each kind of URL reaches, with their minimums. */
function minimumsFor(kind: AllianceAuthDatabaseKind): Partial<Record<DatabaseServer, MinimumVersion>> {
  const { MySQL, MariaDB, PostgreSQL } = ALLIANCE_AUTH_MINIMUMS;
  return kind === 'mysql' ? { MySQL, MariaDB } : { PostgreSQL };
}

function listMinimums(minimums: Partial<Record<DatabaseServer, MinimumVersion>>): string {
  return Object.entries(minimums)
    .map(([server, minimum]) => `${server} ${minimum.label} or newer`)
    .join(', ');
}

/**
 * Pure: the finding for what Alliance Auth's database answered to `select version()`: an error for a
 * server older than supported, naming its version and the minimum; a warning for an answer this
 * release does not read (the server is used as it is).
 */
export function judgeAllianceAuthServer(
  versionText: string,
  kind: AllianceAuthDatabaseKind,
): { error: string } | { warning: string } | { server: ServerVersion } {
  const minimums = minimumsFor(kind);
  const judged = judgeServerVersion(versionText, minimums);
  switch (judged.kind) {
    case 'supported':
      return { server: judged.version };
    case 'too_old':
      return {
        error: `Alliance Auth's database server is ${describeVersion(judged.version)} (version() answered "${shownVersionText(judged.version.text)}"), older than aa-oidc supports: it needs ${judged.version.server} ${judged.minimum.label} or newer; upgrade the database server first`,
      };
    case 'unrecognised':
      return {
        warning: `Alliance Auth's database server answered version() with "${shownVersionText(judged.text)}", which aa-oidc does not read as a supported server (${listMinimums(minimums)}); it is used as it is`,
      };
    default:
      return assertNever(judged);
  }
}

function migrationNumber(name: string): number {
  const match = /^(\d{4})_/.exec(name);
  return match ? Number(match[1]) : -1;
}

/** The newest of Django's migration names (by number, then name: AA has two 0018s). */
function newest(names: readonly string[]): string | undefined {
  return [...names]
    .sort((a, b) => migrationNumber(a) - migrationNumber(b) || (a < b ? -1 : a > b ? 1 : 0))
    .at(-1);
}

/** Pure: the findings for what the database reported. */
export function judgeSchema(
  applied: ReadonlyArray<{ app: string; name: string }>,
  columns: ReadonlyArray<{ table: string; column: string }>,
): Omit<SchemaReport, 'warnings'> & { warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const heads: Record<string, string> = {};
  for (const [app, minimum] of Object.entries(MINIMUM_MIGRATIONS)) {
    const head = newest(applied.filter((row) => row.app === app).map((row) => row.name));
    if (head === undefined) {
      errors.push(
        `Alliance Auth's database has no "${app}" migrations applied; needed: ${app} ${minimum} or later (Alliance Auth 4.0 or newer)`,
      );
      continue;
    }
    heads[app] = head;
    if (migrationNumber(head) < migrationNumber(minimum)) {
      errors.push(
        `Alliance Auth's schema is older than supported: found ${app} migration ${head}, needed ${minimum} or later (Alliance Auth 4.0 or newer); upgrade Alliance Auth first`,
      );
    }
  }
  for (const [app, known] of Object.entries(NEWEST_KNOWN_MIGRATIONS)) {
    const head = heads[app];
    if (head !== undefined && migrationNumber(head) > migrationNumber(known)) {
      warnings.push(
        `Alliance Auth's schema is newer than this release knows: ${app} migration ${head} (newest known: ${known}); the columns read are all present`,
      );
    }
  }
  const missing = missingColumns(columns);
  if (missing.length > 0) {
    errors.push(
      `Alliance Auth's database lacks columns aa-oidc reads (or the login cannot SELECT them): ${missing.join(', ')}`,
    );
  }
  return { errors, warnings, heads };
}

/** Pure: the columns of `COLUMNS_READ` not among `columns`, as `table.column`. */
export function missingColumns(columns: ReadonlyArray<{ table: string; column: string }>): string[] {
  const present = new Set(columns.map((row) => `${row.table.toLowerCase()}.${row.column.toLowerCase()}`));
  const missing: string[] = [];
  for (const [table, names] of Object.entries(COLUMNS_READ)) {
    for (const column of names) if (!present.has(`${table}.${column}`)) missing.push(`${table}.${column}`);
  }
  return missing;
}

/**
 * The columns of the tables aa-oidc reads, as the information schema shows them to AA's login (one
 * statement; a column the login may not SELECT is not shown, so it counts as missing too).
 */
export async function readColumnsOfTablesRead(
  db: AaDb,
  kind: AllianceAuthDatabaseKind,
): Promise<Array<{ table: string; column: string }>> {
  const tables = Object.keys(COLUMNS_READ);
  const schemaFilter =
    kind === 'mysql' ? sql`table_schema = database()` : sql`table_schema = current_schema()`;
  const result = await sql<{ table_name: string; column_name: string }>`
    select table_name as table_name, column_name as column_name from information_schema.columns
    where ${schemaFilter} and table_name in (${sql.join(tables)})`.execute(db);
  return result.rows.map((row) => ({
    // MySQL answers in upper case keys when the alias is not honoured; read both.
    table: String(row.table_name ?? (row as Record<string, unknown>).TABLE_NAME),
    column: String(row.column_name ?? (row as Record<string, unknown>).COLUMN_NAME),
  }));
}

/**
 * Reads `django_migrations` and the information schema, then judges them. With `passwordLogin` on
 * MySQL or MariaDB, also that the login reads `auth_user.username`'s collation, without which no
 * password attempt can be counted in the login throttle (`allianceAuthThrottleKey`).
 */
export async function checkAllianceAuthSchema(
  db: AaDb,
  kind: AllianceAuthDatabaseKind,
  options: { passwordLogin?: boolean } = {},
): Promise<SchemaReport> {
  // An older server than supported would fail later, and not always plainly (the login throttle's
  // WITH RECURSIVE on MySQL 5.7), so it is refused before anything else is read.
  const { rows: versionRows } = await sql<{ version: string }>`select version() as version`.execute(db);
  const serverFinding = judgeAllianceAuthServer(String(versionRows[0]?.version ?? ''), kind);
  if ('error' in serverFinding) return { errors: [serverFinding.error], warnings: [], heads: {} };
  let applied: Array<{ app: string; name: string }>;
  try {
    applied = await db
      .selectFrom('django_migrations')
      .select(['app', 'name'])
      .where('app', 'in', Object.keys(MINIMUM_MIGRATIONS))
      .execute();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (
      code === 'ER_NO_SUCH_TABLE' ||
      code === '42P01' ||
      code === 'ER_TABLEACCESS_DENIED_ERROR' ||
      code === '42501'
    ) {
      return {
        errors: [
          `this is not an Alliance Auth database, or the login may not read it: django_migrations cannot be read (${(error as Error).message})`,
        ],
        warnings: [],
        heads: {},
      };
    }
    throw error;
  }
  const columns = await readColumnsOfTablesRead(db, kind);
  const report: SchemaReport = judgeSchema(applied, columns);
  if ('warning' in serverFinding) report.warnings.push(serverFinding.warning);
  else report.server = serverFinding.server;
  if (report.errors.length === 0 && kind === 'mysql' && options.passwordLogin) {
    const collation = await readUsernameCollation(db);
    if ('problem' in collation) report.errors.push(collation.problem);
  }
  if (report.errors.length === 0 && !(await accessPermissionExists(db))) {
    report.warnings.push(
      'Alliance Auth has no permission allianceauth_oidc.access_oidc: only superusers pass the global gate until it exists (install the plugin once, or create the permission)',
    );
  }
  return report;
}
