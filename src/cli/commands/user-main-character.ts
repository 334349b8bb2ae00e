import type { UserRow } from '../../db/schema.ts';
import type { MainCharacterFields } from '../../directory/builtin/types.ts';
import { MAIN_CHARACTER_FIELDS, quote } from '../../directory/builtin/validation.ts';
import { parseWholeNumber } from '../../util/whole-number.ts';
import { CliError } from '../context.ts';

/** The options of `user set-main-character`, as commander hands them over. */
export interface MainCharacterOptions {
  clear?: boolean;
  characterId?: string;
  characterName?: string;
  corporationId?: string;
  corporationName?: string;
  corporationTicker?: string;
  allianceId?: string;
  allianceName?: string;
  allianceTicker?: string;
  factionId?: string;
  factionName?: string;
}

/**
 * Each part of a main character and its options: an id and a name, which go together, and for a
 * corporation or an alliance a ticker.
 */
const PARTS = [
  { part: 'character', id: 'characterId', name: 'characterName' },
  { part: 'corporation', id: 'corporationId', name: 'corporationName', ticker: 'corporationTicker' },
  { part: 'alliance', id: 'allianceId', name: 'allianceName', ticker: 'allianceTicker' },
  { part: 'faction', id: 'factionId', name: 'factionName' },
] as const satisfies ReadonlyArray<{
  part: string;
  id: keyof MainCharacterFields;
  name: keyof MainCharacterFields;
  ticker?: keyof MainCharacterFields;
}>;

/** `characterId` → `--character-id`. */
function optionName(field: keyof MainCharacterFields): string {
  return `--${field.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
}

/**
 * An id option as a number, refused naming the option unless it is a whole number from 1 to
 * `Number.MAX_SAFE_INTEGER`: past that a JavaScript number is rounded (99999999999999999999 would
 * be stored as 100000000000000000000, another id), and every EVE id is far below it (the columns are
 * 64-bit). The directory checks the value again, as for any other caller.
 */
function parseId(field: keyof MainCharacterFields, part: string, text: string): number {
  const id = parseWholeNumber(text);
  if (id === undefined || !Number.isSafeInteger(id) || id < 1)
    throw new CliError(
      `${optionName(field)} must be the ${part}’s EVE id, a whole number from 1 to ${Number.MAX_SAFE_INTEGER} (got ${quote(text)})`,
    );
  return id;
}

/**
 * The whole main character the options describe, every field the options leave out null: a new main
 * character replaces the old one, corporation, alliance and faction included (a corporation that left
 * its alliance is given without one). `--clear` makes every field null. The values themselves are
 * the directory's to check; here, which options go together.
 */
export function mainCharacterFromOptions(options: MainCharacterOptions): MainCharacterFields {
  const given = MAIN_CHARACTER_FIELDS.map((entry) => entry.field).filter(
    (field) => options[field] !== undefined,
  );
  const fields = Object.fromEntries(MAIN_CHARACTER_FIELDS.map((entry) => [entry.field, null])) as Record<
    keyof MainCharacterFields,
    string | number | null
  >;
  if (options.clear === true) {
    if (given.length > 0)
      throw new CliError(
        `--clear removes the whole main character and takes no other option; leave out ${given.map(optionName).join(', ')}`,
      );
    return fields as MainCharacterFields;
  }
  for (const part of PARTS) {
    const id = options[part.id];
    const name = options[part.name];
    const tickerField = 'ticker' in part ? part.ticker : undefined;
    const ticker = tickerField === undefined ? undefined : options[tickerField];
    if (part.part === 'character' && (id === undefined || name === undefined))
      throw new CliError(
        'a main character needs both --character-id and --character-name (or --clear to remove it)',
      );
    if ((id === undefined) !== (name === undefined))
      throw new CliError(
        `${optionName(part.id)} and ${optionName(part.name)} go together: give both, or neither`,
      );
    if (tickerField !== undefined && ticker !== undefined && id === undefined)
      throw new CliError(
        `${optionName(tickerField)} needs ${optionName(part.id)} and ${optionName(part.name)}`,
      );
    if (id === undefined || name === undefined) continue;
    fields[part.id] = parseId(part.id, part.part, id);
    fields[part.name] = name;
    if (tickerField !== undefined && ticker !== undefined) fields[tickerField] = ticker;
  }
  if (fields.allianceId !== null && fields.corporationId === null)
    throw new CliError(
      '--alliance-id needs the corporation too (--corporation-id and --corporation-name): a character is in an alliance through its corporation',
    );
  return fields as MainCharacterFields;
}

/** `name [TICKER] (id)`, or nothing for a part that is not there. */
function describePart(
  label: string,
  name: string | null,
  id: number | null,
  ticker: string | null,
): string[] {
  if (name === null && id === null) return [];
  return [`${label} ${name ?? '(no name)'}${ticker === null ? '' : ` [${ticker}]`} (${id ?? 'no id'})`];
}

/** A user's main character and its affiliation on one line, or `no main character`. */
export function describeMainCharacter(user: UserRow): string {
  const parts = [
    ...describePart('main character', user.character_name, user.character_id, null),
    ...describePart('corporation', user.corporation_name, user.corporation_id, user.corporation_ticker),
    ...describePart('alliance', user.alliance_name, user.alliance_id, user.alliance_ticker),
    ...describePart('faction', user.faction_name, user.faction_id, null),
  ];
  return parts.length > 0 ? parts.join('; ') : 'no main character';
}
