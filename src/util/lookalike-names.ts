import { nameKey } from './name-key.ts';
import { quotedInput } from './visible-text.ts';

/**
 * Letters of other scripts that a terminal draws as a Latin letter (Unicode's confusables, UTS #39,
 * for the scripts a keyboard layout or a copied name brings in most: Cyrillic, Greek, Armenian, and
 * the dotless i). NFKC already folds the fullwidth and mathematical forms (`nameKey`). Upper case
 * beside lower: Greek `Β` is `B` to the eye, but lower-cased it is `β`, which looks like no Latin
 * letter.
 */
const LATIN_LOOKALIKES: Readonly<Record<string, string>> = {
  // Cyrillic
  а: 'a',
  в: 'B',
  е: 'e',
  һ: 'h',
  і: 'i',
  ј: 'j',
  к: 'k',
  ӏ: 'l',
  м: 'M',
  н: 'H',
  о: 'o',
  р: 'p',
  с: 'c',
  т: 'T',
  у: 'y',
  х: 'x',
  ѕ: 's',
  ԁ: 'd',
  ԛ: 'q',
  ԝ: 'w',
  ү: 'y',
  ѵ: 'v',
  А: 'A',
  В: 'B',
  Е: 'E',
  К: 'K',
  М: 'M',
  Н: 'H',
  О: 'O',
  Р: 'P',
  С: 'C',
  Т: 'T',
  Х: 'X',
  І: 'I',
  Ј: 'J',
  Ѕ: 'S',
  Ү: 'Y',
  Ԛ: 'Q',
  Ԝ: 'W',
  Ӏ: 'I',
  // Greek
  α: 'a',
  ι: 'i',
  κ: 'k',
  ν: 'v',
  ο: 'o',
  ρ: 'p',
  υ: 'u',
  χ: 'x',
  γ: 'y',
  Α: 'A',
  Β: 'B',
  Ε: 'E',
  Ζ: 'Z',
  Η: 'H',
  Ι: 'I',
  Κ: 'K',
  Μ: 'M',
  Ν: 'N',
  Ο: 'O',
  Ρ: 'P',
  Τ: 'T',
  Υ: 'Y',
  Χ: 'X',
  // Armenian, and Latin's own dotless i
  օ: 'o',
  ս: 'u',
  ց: 'g',
  ı: 'i',
};

const LOOKALIKE = new RegExp(`[${Object.keys(LATIN_LOOKALIKES).join('')}]`, 'gu');

/** `name` (NFKC) with each look-alike letter as the Latin letter it looks like. */
function latinLooking(name: string): string {
  return name.normalize('NFKC').replace(LOOKALIKE, (char) => LATIN_LOOKALIKES[char]!);
}

/**
 * What names that differ only in look-alike letters, case or Unicode form share (`аlice` and
 * `Alice`): for grouping many names once, where each of several given names is to be hinted.
 */
export function lookalikeKey(name: string): string {
  return nameKey(latinLooking(name));
}

/**
 * `given` with each letter that looks like a Latin one (`аlice`, its `а` Cyrillic) as that Latin
 * letter (`alice`): the name to look up for `lookalikeHint` when `given` names nothing. Undefined
 * when `given` holds no such letter.
 */
export function latinLookalikeOf(given: string): string | undefined {
  const latin = latinLooking(given);
  return latin === given.normalize('NFKC') ? undefined : latin;
}

/** `"а" U+0430`: a character as a message names it, its code point beside it. */
function describedCharacter(char: string): string {
  return `"${char}" U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Where `given` and `name`, of as many characters, differ: `"а" U+0430 where it has "a" U+0061`, each once. */
function differences(given: string, name: string): string[] {
  const givenCharacters = [...given];
  const nameCharacters = [...name];
  if (givenCharacters.length !== nameCharacters.length) return [];
  const found: string[] = [];
  givenCharacters.forEach((char, index) => {
    const other = nameCharacters[index]!;
    if (char.toLowerCase() === other.toLowerCase()) return;
    const described = `${describedCharacter(char)} where it has ${describedCharacter(other)}`;
    if (!found.includes(described)) found.push(described);
  });
  return found;
}

/**
 * What a "no such user, state, group or application" message adds when `given` names none, but one
 * of `names` differs from it only in letters that look alike (`аlice`, its `а` Cyrillic, for the
 * user `alice`), case aside as the lookups do: which one, and which characters differ, so that the
 * operator sees why what reads as the name found nothing. A hint, never a match: the look-alike is
 * another name (a name made to pass for another is how an impostor would be made). Empty when no
 * name differs so.
 */
export function lookalikeHint(
  entity: 'user' | 'state' | 'group' | 'application',
  given: string,
  names: Iterable<string>,
): string {
  const wanted = lookalikeKey(given);
  const hints: string[] = [];
  for (const name of names) {
    if (nameKey(name) === nameKey(given) || lookalikeKey(name) !== wanted) continue;
    const differing = differences(given.normalize('NFKC'), name.normalize('NFKC'));
    hints.push(
      `the ${entity} ${quotedInput(name)}${differing.length === 0 ? '' : ` (${differing.join(', ')})`}`,
    );
  }
  if (hints.length === 0) return '';
  return `; ${quotedInput(given)} differs only in characters that look alike from ${hints.join(' and from ')}`;
}

/**
 * `lookalikeHint` where the names are too many to read (users, applications): `find` looks up the
 * name `given` reads as in Latin letters (`latinLookalikeOf`), and returns it as stored, if one is.
 * One lookup, only for a name that holds such a letter; a stored name with such letters is not found
 * from one in Latin letters.
 */
export async function lookalikeLookupHint(
  entity: 'user' | 'application',
  given: string,
  find: (latin: string) => Promise<string | undefined>,
): Promise<string> {
  const latin = latinLookalikeOf(given);
  const found = latin === undefined ? undefined : await find(latin);
  return found === undefined ? '' : lookalikeHint(entity, given, [found]);
}
