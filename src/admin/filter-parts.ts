import { queryText } from '../console/ui.ts';

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
 * A text filter of the query (`?q=`, `?state=`): its trimmed text up to `max` characters, '' for none;
 * one given twice is the error to show at its field (and the text is then ''), never listed as if absent.
 */
export function queryFilter(
  query: Record<string, string | string[] | undefined>,
  parameter: string,
  max: number,
): { value: string; error?: string } {
  if (Array.isArray(query[parameter])) return { value: '', error: givenTwice(parameter) };
  return { value: queryText(query, parameter, max) };
}

/** A filter field's error, and the focus when it is the field at fault. */
export function fieldError(name: string, error: string | undefined, focused: string | undefined) {
  return error === undefined ? {} : { error, ...(name === focused ? { autofocus: true } : {}) };
}
