const RELATIVE = /^(\d{1,6})\s*(s|m|h|d|w)$/;
const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** What a time filter accepts, for messages and form hints. */
export const TIME_FILTER_FORMS =
  'an ISO 8601 date or time (2024-05-01, 2024-05-01T12:00:00Z) or a time ago (30m, 24h, 7d, 2w)';

/**
 * A time filter of the audit listings (CLI and admin UI): an ISO 8601 date or time, or a time ago
 * (`30m`, `24h`, `7d`, `2w`). Epoch milliseconds, or undefined when the text is neither.
 */
export function parseTimeFilter(value: string, now = Date.now()): number | undefined {
  const text = value.trim();
  const relative = RELATIVE.exec(text);
  if (relative) return now - Number(relative[1]) * UNIT_MS[relative[2]!]!;
  const date = /^(\d{4})-(\d{2})-(\d{2})(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/.exec(text);
  if (date && isCalendarDate(Number(date[1]), Number(date[2]), Number(date[3]))) {
    const parsed = Date.parse(text);
    if (Number.isFinite(parsed)) return parsed;
  }
  return undefined;
}

/**
 * Whether the day exists in that month: `Date.parse` takes any day up to 31 and runs on into the
 * next month (`2024-02-30` as 1 March, `2023-02-29` too), a time the operator did not write.
 */
function isCalendarDate(year: number, month: number, day: number): boolean {
  // setUTCFullYear, not Date.UTC, which reads the years 0–99 as 1900–1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}
