import { unfitNameCharacter } from '../../util/hidden-characters.ts';
import { quotedInput } from '../../util/visible-text.ts';
import { invalid } from '../errors.ts';
import type { MainCharacterFields } from './types.ts';

export const USERNAME_MAX_LENGTH = 150;
export const NAME_MAX_LENGTH = 150;
/**
 * The `maxlength` of a form field for a username or a state or group name: the limits above count
 * characters (code points, as Django does) but a browser counts UTF-16 units, two for a character
 * outside the BMP, so the field takes twice as many and the server decides.
 */
export const USERNAME_FIELD_MAXLENGTH = 2 * USERNAME_MAX_LENGTH;
export const NAME_FIELD_MAXLENGTH = 2 * NAME_MAX_LENGTH;
export const EMAIL_MAX_LENGTH = 254;
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
/** A state's priority: the range of the 32-bit integer column that holds it. */
export const PRIORITY_MIN = INT32_MIN;
export const PRIORITY_MAX = INT32_MAX;

const USERNAME_PATTERN = /^[\p{L}\p{N}@.+\-_]+$/u;
// Deliberately loose (the mailbox is the mail server's business) but one @, a dotted domain, no
// spaces or control characters.
const EMAIL_PATTERN = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u;
const LOCALE_PATTERN = /^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*$/;
const CONTROL = /\p{Cc}/u;

/** An input as it can appear inside an error message: quoted, escaped, and cut when long (`quotedInput`). */
export function quote(value: unknown): string {
  if (typeof value !== 'string') return typeof value === 'number' ? String(value) : typeof value;
  return quotedInput(value);
}

function requireString(label: string, value: unknown): string {
  if (typeof value !== 'string') throw invalid(`${label} must be a string (got ${typeof value})`);
  if (value.includes('\0')) throw invalid(`${label} ${quote(value)} must not contain NUL bytes`);
  return value;
}

function requireBoolean(label: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalid(`${label} must be true or false (got ${quote(value)})`);
  return value;
}

/**
 * Normalises (NFKC, as Django does) and checks a username: 1–150 letters, digits and `@ . + - _`.
 */
export function normalizeUsername(value: unknown): string {
  const text = requireString('the username', value).normalize('NFKC');
  const length = [...text].length;
  if (length < 1 || length > USERNAME_MAX_LENGTH || !USERNAME_PATTERN.test(text)) {
    throw invalid(
      `invalid username ${quote(value)}: use 1–${USERNAME_MAX_LENGTH} letters, digits and the characters @ . + - _`,
    );
  }
  return text;
}

/**
 * `normalizeUsername` for a user being made: the pattern takes every letter, the Hangul fillers
 * (U+115F, U+1160, U+3164, U+FFA0) among them, which draw nothing, so `admin` followed by one would
 * show as `admin`. A name that only looks a user up is not checked for them: a user made before can
 * still sign in and be found.
 */
export function normalizeNewUsername(value: unknown): string {
  const text = normalizeUsername(value);
  if (unfitNameCharacter(text) === undefined) return text;
  // Named as the input quoted in the message has it: NFKC makes U+3164 and U+FFA0 into U+1160.
  const unfit = unfitNameCharacter(value as string) ?? unfitNameCharacter(text);
  throw invalid(
    `invalid username ${quote(value)}: it contains ${unfit}, which can make the name show as something else; remove it`,
  );
}

/** Checks an email address; the empty string means "no email". */
export function validateEmail(value: unknown): string {
  const text = requireString('the email', value);
  if (text === '') return text;
  if (text.length > EMAIL_MAX_LENGTH || !EMAIL_PATTERN.test(text)) {
    throw invalid(
      `invalid email ${quote(value)}: expected an address like name@example.org (at most ${EMAIL_MAX_LENGTH} characters), or an empty string for none`,
    );
  }
  // Released as the email claim, which relying parties show and may match accounts by: an address
  // with a bidirectional control or an invisible character shows as another one (`al\u200bice@…`).
  refuseUnfitCharacter('email', value, text, 'address');
  return text;
}

/**
 * Checks a name that looks a state or group up (not one it is given: `validateNewName`): 1–150
 * characters, no NUL (no command line carries one, nor PostgreSQL's text). Nothing else is refused:
 * a lookup matches the stored names exactly (by `nameKey`), so a name stored before new names
 * refused what it holds (a control character, a space at an end: `aa-oidc check`, W014, W015) is
 * still found, renamed and deleted when given as stored, and any other name is simply unknown.
 */
export function validateName(kind: 'state' | 'group', value: unknown): string {
  const text = requireString(`the ${kind} name`, value);
  if (text.length < 1 || [...text].length > NAME_MAX_LENGTH)
    throw invalid(`invalid ${kind} name ${quote(value)}: a ${kind} name has 1–${NAME_MAX_LENGTH} characters`);
  return text;
}

/** Two or more whitespace characters in a row (spaces of any width; tabs are control characters). */
const SPACES_IN_A_ROW = /\s{2,}/u;

/** True when `name` has spaces in a row, which `validateNewName` refuses (`aa-oidc check` warns, W014). */
export function hasSpacesInARow(name: string): boolean {
  return SPACES_IN_A_ROW.test(name);
}

/** `name` with each run of spaces as one space: how a web page shows it. */
export function singleSpaced(name: string): string {
  return name.replace(new RegExp(SPACES_IN_A_ROW.source, 'gu'), ' ');
}

/**
 * Checks the name a state or group is given (created or renamed to): 1–150 characters, no
 * surrounding spaces, not `.` or `..`, and none of the characters that would break its line or let
 * it show as something else, naming the one found: a control character, a line or paragraph
 * separator (U+2028, U+2029), a bidirectional control or a zero-width character; nor spaces in a
 * row: `Bob  Smith` looks like `Bob Smith` (a web page shows both alike) but is another name, which a
 * whitelist or a lookup typed with one space would miss. A name that only looks one up is not
 * checked for them (`validateName`): a state made before can still be found, renamed and deleted,
 * and Alliance Auth's names, which aa-oidc only reads, are taken as they are.
 */
export function validateNewName(kind: 'state' | 'group', value: unknown): string {
  // First: the message below for a control character does not say which one.
  const unfit = typeof value === 'string' && !value.includes('\0') ? unfitNameCharacter(value) : undefined;
  if (unfit)
    throw invalid(
      `invalid ${kind} name ${quote(value)}: it contains ${unfit}, which can make the name show as something else or break its line; remove it`,
    );
  const name = requireString(`the ${kind} name`, value);
  if (
    name.length < 1 ||
    [...name].length > NAME_MAX_LENGTH ||
    CONTROL.test(name) ||
    name.trim() !== name ||
    name === '.' ||
    name === '..'
  ) {
    // `.` and `..`: a browser resolves either away in the admin UI's `/admin/groups/<name>`.
    throw invalid(
      `invalid ${kind} name ${quote(value)}: use 1–${NAME_MAX_LENGTH} characters without control characters or surrounding spaces, other than . and ..`,
    );
  }
  if (hasSpacesInARow(name))
    throw invalid(
      `invalid ${kind} name ${quote(value)}: it has spaces in a row, which show as one; separate its words with a single space`,
    );
  return name;
}

export function validatePriority(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
    throw invalid(
      `invalid state priority ${quote(value)}: expected a whole number from ${INT32_MIN} to ${INT32_MAX}`,
    );
  }
  return value;
}

export function validateFlag(label: string, value: unknown): boolean {
  return requireBoolean(label, value);
}

export function validateLocale(value: unknown): string | null {
  if (value === null) return null;
  const text = requireString('the locale', value);
  if (text.length > 35 || !LOCALE_PATTERN.test(text)) {
    throw invalid(`invalid locale ${quote(value)}: expected a language tag such as en, de or pt-BR, or none`);
  }
  return text;
}

/** A search string for listings: at most 200 characters, no NUL. */
export function validateSearch(value: unknown): string {
  const text = requireString('the search text', value);
  if (text.length > 200) throw invalid('the search text is too long: at most 200 characters');
  return text;
}

function validateEveId(label: string, value: unknown): number | null {
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw invalid(`invalid ${label} ${quote(value)}: expected a positive whole number, or none`);
  }
  return value;
}

function validateText(label: string, value: unknown, maxLength: number): string | null {
  if (value === null) return null;
  const text = requireString(label, value);
  if (text.length < 1 || [...text].length > maxLength || CONTROL.test(text) || text.trim() !== text) {
    throw invalid(
      `invalid ${label} ${quote(value)}: use 1–${maxLength} characters without control characters or surrounding spaces, or none`,
    );
  }
  // The name claim and the pages show these, as they show usernames, which refuse the same.
  refuseUnfitCharacter(label, value, text, 'name');
  return text;
}

/**
 * Refuses `text` (the `label` given as `value`) holding a character `unfitNameCharacter` names: a
 * line or paragraph separator, a bidirectional control or an invisible character, which let a
 * `shown` (an address, a name) display as another.
 */
function refuseUnfitCharacter(label: string, value: unknown, text: string, shown: string): void {
  const unfit = unfitNameCharacter(text);
  if (unfit)
    throw invalid(
      `invalid ${label} ${quote(value)}: it contains ${unfit}, which can make the ${shown} show as something else; remove it`,
    );
}

type Validator = (value: unknown) => string | number | null;

/** Each main-character field, its column and its check. */
export const MAIN_CHARACTER_FIELDS: ReadonlyArray<{
  field: keyof MainCharacterFields;
  column:
    | 'character_id'
    | 'character_name'
    | 'corporation_id'
    | 'corporation_name'
    | 'corporation_ticker'
    | 'alliance_id'
    | 'alliance_name'
    | 'alliance_ticker'
    | 'faction_id'
    | 'faction_name';
  validate: Validator;
}> = [
  { field: 'characterId', column: 'character_id', validate: (v) => validateEveId('character id', v) },
  {
    field: 'characterName',
    column: 'character_name',
    validate: (v) => validateText('character name', v, 254),
  },
  { field: 'corporationId', column: 'corporation_id', validate: (v) => validateEveId('corporation id', v) },
  {
    field: 'corporationName',
    column: 'corporation_name',
    validate: (v) => validateText('corporation name', v, 254),
  },
  {
    field: 'corporationTicker',
    column: 'corporation_ticker',
    validate: (v) => validateText('corporation ticker', v, 10),
  },
  { field: 'allianceId', column: 'alliance_id', validate: (v) => validateEveId('alliance id', v) },
  { field: 'allianceName', column: 'alliance_name', validate: (v) => validateText('alliance name', v, 254) },
  {
    field: 'allianceTicker',
    column: 'alliance_ticker',
    validate: (v) => validateText('alliance ticker', v, 10),
  },
  { field: 'factionId', column: 'faction_id', validate: (v) => validateEveId('faction id', v) },
  { field: 'factionName', column: 'faction_name', validate: (v) => validateText('faction name', v, 254) },
];
