import { queryText } from '../console/ui.ts';
import { quote } from '../directory/builtin/validation.ts';

/**
 * What the filters of the admin listings share (logs, applications, users): a filter that is no value
 * of its field is refused at its field (400), never listed as if it were absent or "Any".
 */

/** The refusal of a filter given more than once (`?since=1h&since=2d`): neither is taken, nor both ignored. */
export function givenTwice(parameter: string): string {
  return `${parameter}= is given more than once: give it once.`;
}

/**
 * The refusal of a choice filter (`?kind=`, `?active=`) that is none of its values, shown at its field:
 * a filter mistyped (or from an older link) must not list everything as if it were "Any".
 */
export function unknownChoice(parameter: string, values: readonly string[], noun = parameter): string {
  return `Not a ${noun}: ${parameter}= takes one of ${values.join(', ')}, or nothing for any.`;
}

/**
 * A choice filter of the query: one of `values`, or '' for any; an unknown value or one given twice is
 * the error to show at its field (and the value is then '').
 */
export function queryChoice<T extends string>(
  query: Record<string, string | string[] | undefined>,
  parameter: string,
  values: readonly T[],
  noun = parameter,
): { value: T | ''; error?: string } {
  if (Array.isArray(query[parameter])) return { value: '', error: givenTwice(parameter) };
  const text = queryText(query, parameter, 40);
  if (text === '') return { value: '' };
  return (values as readonly string[]).includes(text)
    ? { value: text as T }
    : { value: '', error: unknownChoice(parameter, values, noun) };
}

/**
 * The page number of a paged listing (`?page=`, as its page links give it): 1 when absent or empty;
 * one that is no whole number from 1 (`abc`, `-3`, `1.5`, `0`) or given twice is the error to show,
 * never read as the first page; a larger one than `last` is read as `last`.
 */
export function queryPage(
  query: Record<string, string | string[] | undefined>,
  last: number,
): { page: number; error?: string } {
  const given = query.page;
  if (Array.isArray(given)) return { page: 1, error: givenTwice('page') };
  // Whole, not cut to a length: a cut text could be digits where the whole is not.
  const text = typeof given === 'string' ? given.trim() : '';
  if (text === '') return { page: 1 };
  if (!/^\d+$/.test(text) || Number(text) < 1)
    return {
      page: 1,
      error: `Not a page: page= takes a whole number from 1, as the page links give it; remove it for the first page.`,
    };
  return { page: Math.min(last, Number(text)) };
}

/**
 * The refusal of a text filter longer than its field takes (`?q=` of 151 characters): refused, never
 * cut to its first `max` characters, which would list what the operator did not search for.
 */
export function tooLong(parameter: string, max: number): string {
  return `${parameter}= is longer than ${max} characters: give at most ${max}.`;
}

/**
 * A text filter of the query (`?q=`, `?state=`): its trimmed text (as given with `asGiven`: a name,
 * which a space at an end stored before such were refused, or Alliance Auth's, belongs to), '' for
 * none. One given twice, or longer than `max` UTF-16 units (as a field's `maxlength` counts), is the
 * error to show at its field, never listed as if absent or cut short; a text too long is kept, to be
 * shortened there.
 */
export function queryFilter(
  query: Record<string, string | string[] | undefined>,
  parameter: string,
  max: number,
  options: { asGiven?: true } = {},
): { value: string; error?: string } {
  const given = query[parameter];
  if (Array.isArray(given)) return { value: '', error: givenTwice(parameter) };
  const text = typeof given === 'string' ? given : '';
  const value = options.asGiven ? text : text.trim();
  return value.length > max ? { value, error: tooLong(parameter, max) } : { value };
}

/**
 * The refusal of a state or group filter that names none of the directory's (an old bookmark, a
 * state renamed since): said at its field rather than listing nobody under "Any".
 */
export function unknownName(noun: 'state' | 'group', given: string): string {
  return `No ${noun} is named ${quote(given)}: ${noun}= takes the name of one of the ${noun}s listed, or nothing for any.`;
}

/**
 * The values an action's preview carries from its query (`?state=`, `?group=`, `?to=`), as given, as
 * the confirmation's form posts them (the action trims what it trims, a new name, a priority), never
 * cut (the directory refuses a name too long, naming it; a cut one could be another name); or the
 * refusal of one given twice (`?group=a&group=b`), which names it: neither is previewed, nor '' in
 * their stead (the input is then empty). A value absent is ''.
 */
export function carriedQuery(
  query: Record<string, string | string[] | undefined>,
  names: readonly string[],
): { input: URLSearchParams; error?: string } {
  const input = new URLSearchParams();
  for (const name of names) {
    const given = query[name];
    if (Array.isArray(given)) return { input: new URLSearchParams(), error: givenTwice(name) };
    input.set(name, typeof given === 'string' ? given : '');
  }
  return { input };
}

/** A filter field's error, and the focus when it is the field at fault. */
export function fieldError(name: string, error: string | undefined, focused: string | undefined) {
  return error === undefined ? {} : { error, ...(name === focused ? { autofocus: true } : {}) };
}
