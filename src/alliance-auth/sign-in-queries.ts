import { sql } from 'kysely';
import { isRowId, MAX_ROW_ID } from '../db/row-id.ts';
import { type AaDb, truthy } from './schema.ts';
import { toNumberOrNull } from './user-queries.ts';

/** What the two sign-in methods read: a character's ownership (EVE SSO) and a password hash. */
/** What AA knows about one EVE character's ownership, for the EVE SSO decision. */
export interface CharacterOwnership {
  /** The character has an `eveonline_evecharacter` row. */
  characterKnown: boolean;
  ownership: {
    userId: number;
    ownerHash: string;
    userActive: boolean;
    /** The EVE id of the owner's main character, or null without one. */
    mainCharacterId: number | null;
  } | null;
}

/**
 * The largest EVE id `eveonline_evecharacter.character_id` holds: MariaDB's column is unsigned,
 * PostgreSQL's a signed 32-bit integer (it holds up to `MAX_ROW_ID`).
 */
const MAX_CHARACTER_ID = 4_294_967_295;

export async function selectCharacterOwnership(db: AaDb, characterId: number): Promise<CharacterOwnership> {
  // An id no column holds is nobody's character (EVE SSO's subject may name any number).
  if (!Number.isSafeInteger(characterId) || characterId < 1 || characterId > MAX_CHARACTER_ID) {
    return { characterKnown: false, ownership: null };
  }
  const rows = await db
    .selectFrom('eveonline_evecharacter as c')
    .leftJoin('authentication_characterownership as co', 'co.character_id', 'c.id')
    .leftJoin('auth_user as u', 'u.id', 'co.user_id')
    .leftJoin('authentication_userprofile as p', 'p.user_id', 'u.id')
    .leftJoin('eveonline_evecharacter as mc', 'mc.id', 'p.main_character_id')
    .select(['c.id', 'co.user_id', 'co.owner_hash', 'u.is_active', 'mc.character_id as main_character_id'])
    .where((eb) =>
      characterId <= MAX_ROW_ID
        ? eb('c.character_id', '=', characterId)
        : // Beyond 2^31 only MariaDB's unsigned column can hold it: PostgreSQL refuses to compare
          // its 32-bit column with such a number unless both are read as decimals.
          eb('c.character_id', '=', sql<number>`cast(${characterId} as decimal(10, 0))`),
    )
    .execute();
  const row = rows[0];
  if (!row) return { characterKnown: false, ownership: null };
  if (row.user_id === null || row.owner_hash === null) return { characterKnown: true, ownership: null };
  return {
    characterKnown: true,
    ownership: {
      userId: Number(row.user_id),
      ownerHash: row.owner_hash,
      userActive: truthy(row.is_active),
      mainCharacterId: toNumberOrNull(row.main_character_id),
    },
  };
}

/** The most characters Django's `auth_user.username` holds (`max_length=150`). */
export const AA_USERNAME_MAX_LENGTH = 150;

/** An `auth_user` row as password sign-in reads it. */
export interface PasswordRecord {
  id: number;
  username: string;
  password: string;
  active: boolean;
}

/**
 * The stored Django password hash of the user a typed username names, with what the login decision
 * needs. The name is read as Django's login form reads it (`CharField` strips it, which the login
 * route has done: `stripPythonWhitespace`; then `UsernameField`: NFKC, so `ｐｉｌｏｔ` or `𝐩𝐢𝐥𝐨𝐭` is
 * `pilot`) and matched as its `ModelBackend` matches it (`username =`: the database's collation
 * decides the case). A name stored in another form (written to `auth_user` by hand: Django
 * stores NFKC) is still found when typed exactly as stored, but the NFKC form's user comes first. Only
 * exactly: the login throttle counts the NFKC form (`allianceAuthThrottleKey`), and a UCA collation
 * holds far more spellings equal to a name than their NFKC forms, such as `pi\ufe70lot3` for `pilot3`
 * (the presentation form weighs nothing, its NFKC form a space): each would be a fresh budget for
 * guessing pilot3's password. A name longer than the column holds is nobody's: it is never cut to fit,
 * which could name another.
 */
export async function selectPasswordRecord(db: AaDb, typed: string): Promise<PasswordRecord | undefined> {
  const username = typed.normalize('NFKC');
  if ([...username].length > AA_USERNAME_MAX_LENGTH) return undefined;
  const row = await db
    .selectFrom('auth_user')
    .select([
      'id',
      'username',
      'password',
      'is_active',
      sql<number>`case when ${sql.ref('username')} = ${username} then 0 else 1 end`.as('as_typed'),
    ])
    .where('username', 'in', [...new Set([username, typed])])
    .orderBy('as_typed')
    .limit(1)
    .executeTakeFirst();
  // Found by the name as typed, not by its NFKC form: only the row that holds exactly that name.
  if (row && Number(row.as_typed) !== 0 && row.username !== typed) return undefined;
  return row
    ? { id: Number(row.id), username: row.username, password: row.password, active: truthy(row.is_active) }
    : undefined;
}

/**
 * Why aa-oidc cannot sign in the Alliance Auth user with this id: one beyond the 32-bit ids its own
 * tables keep (an `auth_user.id` widened by hand). Undefined for every id Django makes.
 */
export function unkeptUserId(id: number): string | undefined {
  return isRowId(id)
    ? undefined
    : `id ${id} is beyond the 32-bit ids aa-oidc keeps (${MAX_ROW_ID}); Django's auth_user.id is a 32-bit AutoField, so check whether Alliance Auth's database was altered`;
}
