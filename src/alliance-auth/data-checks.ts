import { type SelectQueryBuilder, sql } from 'kysely';
import { quotedName, UNFIT_IN_ANY_PLACE, unfitNameCharacters } from '../util/hidden-characters.ts';
import {
  AA_DATABASE_SETTING,
  type AllianceAuthConnection,
  isPrivilegeError,
  isSchemaOrPermissionError,
  isStatementTimeout,
  WHAT_HOLDS_AA_TABLES,
} from './database.ts';
import { type AaDb, truthy } from './schema.ts';

/**
 * `aa-oidc check`'s findings about the rows of Alliance Auth's database that AA's own code would not
 * have left, but SQL typed by hand or a task that failed halfway does: users without a profile or a
 * state (W016), names with a control, bidirectional control or invisible character (W017), state or
 * group names that read as one once a NUL is U+FFFD (W018), and main characters their user does not
 * own (W019). One query a finding, each bounded: a count, and the first few named. aa-oidc only reads
 * AA's database, so every hint mends it in Alliance Auth. A query that fails (a grant revoked, a
 * table gone, the statement timeout) is a finding of its own (W020), the others still made.
 */

/**
 * One of `aa-oidc check`'s findings (checks/checks.ts `Finding`, which the CLI gathers: a directory
 * knows nothing of the checks).
 */
export interface AllianceAuthFinding {
  id: 'W016' | 'W017' | 'W018' | 'W019' | 'W020';
  level: 'warning';
  message: string;
  hint: string;
}

type Finding = AllianceAuthFinding;

/** How many users or names a finding names; it counts the rest. */
export const SHOWN_ROWS = 5;

/**
 * A name as the other findings quote it: each control or hidden character as its `\u` escape. A
 * column without a character set (`varbinary`, altered by hand) answers bytes, read as UTF-8.
 */
function shownName(name: unknown): string {
  return quotedName(Buffer.isBuffer(name) ? name.toString('utf8') : String(name));
}

/**
 * The first `SHOWN_ROWS` users of a finding's query over `auth_user as u`, by username as AA's admin
 * lists them, each row with how many there are in all (`total`).
 */
function firstUsers<DB, TB extends keyof DB, O>(query: SelectQueryBuilder<DB, TB, O>) {
  return query
    .select(sql<number | string>`count(*) over ()`.as('total'))
    .orderBy(sql.ref('u.username'))
    .orderBy(sql.ref('u.id'))
    .limit(SHOWN_ROWS);
}

function andMore(total: number, shown: number): string {
  return total > shown ? `, and ${total - shown} more` : '';
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

type DataCheckId = Exclude<Finding['id'], 'W020'>;

/** What each data check looks for, as W020 names the one that could not run. */
const LOOKS_FOR: Readonly<Record<DataCheckId, string>> = {
  W016: 'users without a profile or a state',
  W017: 'names with a control, bidirectional control or invisible character',
  W018: 'state or group names a NUL makes read as one',
  W019: 'main characters their user does not own',
};

export async function allianceAuthDataChecks(
  aa: Pick<AllianceAuthConnection, 'db' | 'kind' | 'displayUrl' | 'statementTimeoutMs'>,
): Promise<Finding[]> {
  const run = async (id: DataCheckId, check: () => Promise<Finding[]>): Promise<Finding[]> => {
    try {
      return await check();
    } catch (error) {
      return [notRunFinding(id, error, aa)];
    }
  };
  const findings = await Promise.all([
    run('W016', () => usersWithoutStateFindings(aa.db)),
    run('W017', () => unfitCharacterFindings(aa)),
    // PostgreSQL holds no NUL in any text: only MariaDB/MySQL can have two names that read as one.
    aa.kind === 'mysql' ? run('W018', () => mergedNameFindings(aa.db)) : [],
    run('W019', () => unownedMainFindings(aa.db)),
  ]);
  return findings.flat();
}

/**
 * W020: a data check whose query failed, named with what it looks for and the database's answer (the
 * URL without its password; a driver's message names the login, never its password), the hint by the
 * cause: a grant the login lacks, a table or column AA's schema lacks, the statement timeout, or a
 * database that does not answer.
 */
function notRunFinding(
  id: DataCheckId,
  error: unknown,
  aa: Pick<AllianceAuthConnection, 'displayUrl' | 'statementTimeoutMs'>,
): Finding {
  const answer = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim();
  const again = 'then run aa-oidc check again';
  const hint = isPrivilegeError(error)
    ? `grant the login SELECT on Alliance Auth's tables (GRANT SELECT ON <database>.* TO <login> on MySQL or MariaDB; GRANT SELECT ON ALL TABLES IN SCHEMA public TO <login> on PostgreSQL), ${again}`
    : isSchemaOrPermissionError(error)
      ? `Alliance Auth's schema lacks a table or column the check reads: apply AA's migrations (python manage.py migrate), ${again}`
      : isStatementTimeout(error)
        ? `the query ran past the statement timeout of ${aa.statementTimeoutMs / 1000} s (AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS): look for ${WHAT_HOLDS_AA_TABLES}, or give the check a longer timeout`
        : `make sure Alliance Auth's database answers (${AA_DATABASE_SETTING}), ${again}`;
  return {
    id: 'W020',
    level: 'warning',
    message: `the check for ${LOOKS_FOR[id]} in Alliance Auth's database (${id}) could not run, so it reports nothing: ${aa.displayUrl} answered ${quotedName(answer)}`,
    hint,
  };
}

/**
 * W016: users without a profile, or whose profile's state is gone. AA makes a profile for each new
 * user (`create_required_models`) in the Guest state, and moves a deleted state's users to Guest:
 * such a user was written or edited in the database directly. aa-oidc reads no state for them, so
 * no state grants them access and no whitelisted state admits them; the directory's filters, like
 * AA's admin, list them under no state.
 */
async function usersWithoutStateFindings(db: AaDb): Promise<Finding[]> {
  const rows = await db
    .selectFrom('auth_user as u')
    .leftJoin('authentication_userprofile as p', 'p.user_id', 'u.id')
    .leftJoin('authentication_state as s', 's.id', 'p.state_id')
    .where((eb) => eb.or([eb('p.id', 'is', null), eb('s.id', 'is', null)]))
    .select(['u.id', 'u.username', 'p.id as profile_id', 'p.state_id'])
    .$call(firstUsers)
    .execute();
  if (rows.length === 0) return [];
  const total = Number(rows[0]!.total);
  const named = rows.map(
    (row) =>
      `${shownName(row.username)} (id ${row.id}: ${row.profile_id === null ? 'no profile' : `its state, id ${row.state_id}, does not exist`})`,
  );
  return [
    {
      id: 'W016',
      level: 'warning',
      message: `${plural(total, 'Alliance Auth user has', 'Alliance Auth users have')} no profile or no state (AA gives every user a profile in a state; SQL typed by hand or a failed task left these): aa-oidc reads no state for them, so no state grants them access and no application whitelisting a state admits them: ${named.join(', ')}${andMore(total, rows.length)}`,
      hint: "in Alliance Auth's shell (python manage.py shell): UserProfile.objects.get_or_create(user=User.objects.get(id=ID)) makes a missing profile and assigns its state; User.objects.get(id=ID).profile.assign_state() gives a profile whose state is gone one again; then run aa-oidc check again",
    },
  ];
}

/** The names W017 judges, in the order its findings come. */
const NAMED_KINDS = ['user', 'state', 'group', 'character'] as const;
type NamedKind = (typeof NAMED_KINDS)[number];

/**
 * `UNFIT_IN_ANY_PLACE` as a bracket expression of each server's regular expressions: PostgreSQL's
 * (`\u` and `\U` escapes; it holds no NUL, which it refuses in a pattern) and MariaDB's PCRE
 * (`\x{…}`, which MySQL's ICU reads the same).
 */
function unfitCharacterPattern(kind: AllianceAuthConnection['kind']): string {
  const escape = (code: number) => {
    const hex = code.toString(16);
    if (kind === 'mysql') return `\\x{${hex}}`;
    return code > 0xffff ? `\\U${hex.padStart(8, '0')}` : `\\u${hex.padStart(4, '0')}`;
  };
  const ranges = UNFIT_IN_ANY_PLACE.map(([first, last]) =>
    kind === 'postgres' && first === 0 ? ([1, last] as const) : ([first, last] as const),
  );
  return `[${ranges.map(([first, last]) => (first === last ? escape(first) : `${escape(first)}-${escape(last)}`)).join('')}]`;
}

/** True in SQL when the column holds a NUL byte (compared as bytes: a collation may ignore it). */
function holdsNul(kind: AllianceAuthConnection['kind'], column: string) {
  return kind === 'mysql'
    ? sql<number>`(locate(x'00', cast(${sql.ref(column)} as binary)) > 0)`
    : sql<boolean>`false`;
}

/**
 * W017: usernames, state and group names and character names with a character aa-oidc refuses in its
 * own names (`unfitNameCharacters`, W015): a control character, a line or paragraph separator, a
 * bidirectional control or an invisible character. aa-oidc's listings and pages show it as an escape
 * (`\x07`, `[U+202E]`), a NUL as U+FFFD (`NUL_FREE_TEXT`), but the claims carry the name as it is (a
 * NUL as U+FFFD), where a relying party may show it raw, or as another name (`Admins\u202e`). One
 * query, one finding a kind of name, each naming the first few by id, as AA's admin finds them.
 */
async function unfitCharacterFindings(aa: Pick<AllianceAuthConnection, 'db' | 'kind'>): Promise<Finding[]> {
  const pattern = unfitCharacterPattern(aa.kind);
  // MariaDB's regular expressions read a column without a character set (`varbinary`, altered by
  // hand) as bytes, where U+2028 is no character: it is read as UTF-8 first, as text, for both.
  const text = (column: string) =>
    aa.kind === 'mysql' ? sql`convert(${sql.ref(column)} using utf8mb4)` : sql.ref(column);
  const matches = (column: string) =>
    aa.kind === 'mysql' ? sql`${text(column)} regexp ${pattern}` : sql`${text(column)} ~ ${pattern}`;
  const source = (kind: NamedKind, table: string, column: string) =>
    sql`select ${sql.lit(kind)} as kind, id, ${text(column)} as name, ${holdsNul(aa.kind, column)} as has_nul from ${sql.table(table)} where ${matches(column)}`;
  const result = await sql<{
    kind: NamedKind;
    id: number;
    name: string;
    has_nul: unknown;
    total: number | string;
  }>`
    select kind, id, name, has_nul, total from (
      select kind, id, name, has_nul,
        row_number() over (partition by kind order by id) as nth,
        count(*) over (partition by kind) as total
      from (
        ${source('user', 'auth_user', 'username')}
        union all ${source('state', 'authentication_state', 'name')}
        union all ${source('group', 'auth_group', 'name')}
        union all ${source('character', 'eveonline_evecharacter', 'character_name')}
      ) named
    ) numbered
    where nth <= ${SHOWN_ROWS}
    order by kind, id`.execute(aa.db);
  const findings: Finding[] = [];
  for (const kind of NAMED_KINDS) {
    const rows = result.rows.filter((row) => row.kind === kind);
    if (rows.length === 0) continue;
    const total = Number(rows[0]!.total);
    const named = rows.map(
      (row) => `${shownName(row.name)} (id ${row.id}: ${unfitList(row.name, truthy(row.has_nul as never))})`,
    );
    findings.push({
      id: 'W017',
      level: 'warning',
      message: `${plural(total, `Alliance Auth ${NAME_OF[kind]} holds`, `Alliance Auth ${NAME_OF[kind]}s hold`)} a control, bidirectional control or invisible character, which aa-oidc shows as an escape (a NUL as U+FFFD) but the claims carry as it is, where a relying party may show it raw, or as another name: ${named.join(', ')}${andMore(total, rows.length)}`,
      hint: RENAME_HINT[kind],
    });
  }
  return findings;
}

const NAME_OF: Readonly<Record<NamedKind, string>> = {
  user: 'username',
  state: 'state name',
  group: 'group name',
  character: 'character name',
};

const RENAME_HINT: Readonly<Record<NamedKind, string>> = {
  user: "rename each user in Alliance Auth's admin (aa-oidc only reads Alliance Auth's names; sub is the user's id, which a rename keeps)",
  state:
    "rename each state in Alliance Auth's admin (aa-oidc only reads Alliance Auth's names; application whitelists follow the rename at the next poll)",
  group:
    "rename each group in Alliance Auth's admin (aa-oidc only reads Alliance Auth's names; application whitelists follow the rename at the next poll)",
  character:
    "put each name right in Alliance Auth's database, where it was written: Alliance Auth takes character names from ESI, which has none of these characters in one",
};

/** The unfit characters of a name read from AA, with where each is; a NUL (read as U+FFFD) by name only. */
function unfitList(name: string, hadNul: boolean): string {
  const found = unfitNameCharacters(name).map(
    (unfit) => `${unfit.description}, at character ${unfit.position}`,
  );
  const shown = found.slice(0, 3);
  if (found.length > shown.length) shown.push(`${found.length - shown.length} more`);
  if (hadNul) shown.unshift('a NUL, which aa-oidc reads as U+FFFD');
  return shown.join('; ');
}

/**
 * W018: state or group names that differ only where one holds a NUL and the other U+FFFD (MariaDB and
 * MySQL store a NUL; PostgreSQL refuses it). aa-oidc reads a NUL as U+FFFD (`NUL_FREE_TEXT`), so both
 * read as one name: whitelists match by name, and a whitelist naming it admits the members of each.
 * One query reads every state and group name (a few hundred at most) with whether it holds a NUL.
 */
async function mergedNameFindings(db: AaDb): Promise<Finding[]> {
  const result = await sql<{ kind: 'state' | 'group'; id: number; name: string; has_nul: unknown }>`
    select 'state' as kind, id, name, ${holdsNul('mysql', 'name')} as has_nul from authentication_state
    union all
    select 'group' as kind, id, name, ${holdsNul('mysql', 'name')} as has_nul from auth_group
    order by kind, id`.execute(db);
  const findings: Finding[] = [];
  for (const kind of ['state', 'group'] as const) {
    const byName = new Map<string, Array<{ id: number; nul: boolean }>>();
    for (const row of result.rows) {
      if (row.kind !== kind) continue;
      const same = byName.get(row.name) ?? [];
      same.push({ id: Number(row.id), nul: truthy(row.has_nul as never) });
      byName.set(row.name, same);
    }
    const merged = [...byName].filter(([, rows]) => rows.length > 1 && rows.some((row) => row.nul));
    if (merged.length === 0) continue;
    const named = merged
      .slice(0, SHOWN_ROWS)
      .map(
        ([name, rows]) =>
          `${shownName(name)} (${rows.map((row) => `id ${row.id}${row.nul ? ' with a NUL' : ''}`).join(', ')})`,
      );
    findings.push({
      id: 'W018',
      level: 'warning',
      message: `${plural(merged.length, `pair of Alliance Auth ${kind}s reads`, `sets of Alliance Auth ${kind}s read`)} as one name, as aa-oidc reads a NUL as U+FFFD: whitelists match by name, so one naming it admits the members of each, and the claims cannot tell them apart: ${named.join(', ')}${andMore(merged.length, named.length)}`,
      hint: `rename the ${kind} with the NUL in Alliance Auth's admin or database (ids above), then check the whitelists of aa-oidc's applications that name it`,
    });
  }
  return findings;
}

/**
 * W019: a user whose main character (`authentication_userprofile.main_character_id`) is owned by
 * another user, or by nobody (`authentication_characterownership`). AA clears a main character whose
 * ownership goes (`validate_main_character`), so only a direct database edit or a failed task leaves
 * one. AA's state comes from that main character all the same, and the plugin's claims named it, as
 * aa-oidc's do (the stored profile is authoritative): the claims release a character the user does
 * not own. EVE sign-in with it is refused already (AA's rule: the ownership's user, whose main it is).
 */
async function unownedMainFindings(db: AaDb): Promise<Finding[]> {
  const rows = await db
    .selectFrom('authentication_userprofile as p')
    .innerJoin('auth_user as u', 'u.id', 'p.user_id')
    .innerJoin('eveonline_evecharacter as c', 'c.id', 'p.main_character_id')
    .leftJoin('authentication_characterownership as co', 'co.character_id', 'c.id')
    .leftJoin('auth_user as o', 'o.id', 'co.user_id')
    .where((eb) => eb.or([eb('co.id', 'is', null), eb('co.user_id', '<>', eb.ref('p.user_id'))]))
    .select([
      'u.id',
      'u.username',
      'c.character_id',
      'c.character_name',
      'co.user_id as owner_id',
      'o.username as owner',
    ])
    .$call(firstUsers)
    .execute();
  if (rows.length === 0) return [];
  const total = Number(rows[0]!.total);
  const named = rows.map(
    (row) =>
      `${shownName(row.username)} (id ${row.id}): ${shownName(row.character_name)} (EVE id ${row.character_id}), ${row.owner_id === null ? 'owned by nobody' : `owned by ${row.owner === null ? `user id ${row.owner_id}` : `${shownName(row.owner)} (id ${row.owner_id})`}`}`,
  );
  return [
    {
      id: 'W019',
      level: 'warning',
      message: `${plural(total, 'Alliance Auth user has', 'Alliance Auth users have')} a main character another user owns, or nobody does (AA clears a main character whose ownership goes; a database edit or a failed task left these): their claims release that character, its corporation and alliance as theirs, and AA's state follows it: ${named.join('; ')}${andMore(total, rows.length)}`,
      hint: "in Alliance Auth's admin, set each user's main character to one of their own characters, or clear it (AA then assigns the state again); a character nobody owns is the user's again once they sign in to Alliance Auth with it",
    },
  ];
}
