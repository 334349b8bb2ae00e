import { stdSerializers } from 'pino';
import { censorValue, isSensitiveKey, redactNamedParameters, scrubString } from '../util/scrub-text.ts';

/**
 * Redaction for the logger, the request serializer and the audit log: by key (`isSensitiveKey`) and
 * by shape inside every string (`scrubString`). The rules live in `util/scrub-text.ts`, where the
 * configuration's messages read URLs with them too.
 */
export { censorValue, isSensitiveKey, REDACTED, scrubString } from '../util/scrub-text.ts';

/**
 * A URL (absolute or path + query) with the values of sensitive query and fragment parameters, and
 * the password of its user information, replaced; and the values of `alsoSecret`, parameters secret
 * on this URL's route only.
 */
export function redactUrl(url: string, alsoSecret?: ReadonlySet<string>): string {
  const scrubbed = scrubString(url);
  return alsoSecret === undefined ? scrubbed : redactNamedParameters(scrubbed, alsoSecret);
}

const MAX_DEPTH = 10;

/**
 * A copy of `value` safe to log: sensitive keys censored at any depth, strings scrubbed, errors
 * serialized (message, stack, cause), cycles and excessive depth cut. Never mutates its input.
 */
export function scrubValue(value: unknown, key = '', depth = 0, seen = new WeakSet<object>()): unknown {
  if (key !== '' && isSensitiveKey(key)) return censorValue(value, key);
  if (typeof value === 'string') return scrubString(value);
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  if (value instanceof Date) return value;
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  seen.add(value);
  try {
    if (value instanceof Error) return scrubValue(stdSerializers.err(value), '', depth, seen);
    if (Array.isArray(value)) return value.map((item) => scrubValue(item, '', depth + 1, seen));
    const source =
      typeof (value as { toJSON?: unknown }).toJSON === 'function'
        ? (value as { toJSON(): unknown }).toJSON()
        : value;
    if (typeof source !== 'object' || source === null) return scrubValue(source, '', depth + 1, seen);
    const copy: Record<string, unknown> = {};
    for (const [childKey, child] of Object.entries(source)) {
      copy[childKey] = scrubValue(child, childKey, depth + 1, seen);
    }
    return copy;
  } finally {
    seen.delete(value);
  }
}
