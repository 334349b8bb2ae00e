/**
 * `new Date(now()).toISOString()`, formatted once per millisecond: a busy server stamps several
 * records in the same millisecond (the audit event of every introspection and every token issued),
 * and formatting a date costs more than the rest of stamping one.
 */
export function isoNowOncePerMillisecond(now: () => number = () => Date.now()): () => string {
  let formattedAt = Number.NaN;
  let formatted = '';
  return () => {
    const millisecond = now();
    if (millisecond !== formattedAt) {
      formattedAt = millisecond;
      formatted = new Date(millisecond).toISOString();
    }
    return formatted;
  };
}
