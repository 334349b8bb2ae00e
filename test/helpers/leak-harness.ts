import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { AuditBus } from '../../src/audit/bus.ts';
import type { AuditRecord } from '../../src/audit/events.ts';
import type { LoggerOptions } from '../../src/logging/logger.ts';
import { BIDI_CONTROL, codePoint, INVISIBLE_CHARACTER } from '../../src/util/hidden-characters.ts';

/**
 * Catches secrets escaping into observable output during a test. Give the app the harness's
 * logger options (every line at `trace` is captured), attach its audit bus, register every secret
 * the test handles (passwords, client secrets, tokens, codes), run the flow, then
 * `assertNoLeaks()`: it fails if any registered secret appears, raw or encoded, in a log line, an
 * audit event, a watched file (the JSON-lines sink) or any extra text handed to `scanText` (CLI
 * output, HTTP error bodies that must not echo secrets). It fails too on a log line, or a line of a
 * watched file, that holds a control or invisible character as it is rather than as its JSON escape:
 * what forges a line or drives the terminal a log is followed in (`unshownCharacter`). It fails as
 * well on a head/tail fragment of a token or code (`token_masked`, `code_masked`) in a log line or a
 * watched file, unless the test runs masks on purpose (`maskedFragments`): a server under test has
 * masks off, as every production server has.
 *
 *     const harness = createLeakHarness();
 *     const app = await createApp(testConfig(database), { logger: harness.loggerOptions });
 *     harness.attach(app);
 *     harness.registerSecret(password, 'alice password');
 *     … the flow …
 *     await harness.assertNoLeaks();
 */
export interface LeakHarness {
  /** Pass as `{ logger: harness.loggerOptions }` to `createServices` / `createApp`. */
  readonly loggerOptions: LoggerOptions;
  /** Captures every audit event of the app (subscribes a receiver to `audit`). */
  attach(target: { audit: AuditBus }): void;
  /** A value that must never appear; at least 8 characters (shorter values match by accident). */
  registerSecret(value: string, label?: string): void;
  /** Also scan this file at `assertNoLeaks()` time (e.g. `audit.jsonlPath`). */
  watchFile(path: string): void;
  /** Adds text from elsewhere (CLI stdout/stderr, response bodies) to what is scanned. */
  scanText(source: string, text: string): void;
  readonly logLines: readonly string[];
  readonly auditRecords: readonly AuditRecord[];
  /**
   * Waits for pending audit deliveries, then fails naming the secret, the encoding and the source,
   * or the raw control character and the line that holds it.
   */
  assertNoLeaks(): Promise<void>;
}

interface RegisteredSecret {
  label: string;
  forms: Array<{ encoding: string; text: string; caseInsensitive: boolean }>;
}

const MIN_SECRET_LENGTH = 8;

/** The secret as it could appear in text: raw, JSON-escaped, URL/form-encoded, base64(url) at every alignment, hex. */
export function encodedForms(value: string): RegisteredSecret['forms'] {
  const forms: RegisteredSecret['forms'] = [];
  const add = (encoding: string, text: string, caseInsensitive = false) => {
    if (text.length >= MIN_SECRET_LENGTH / 2 && !forms.some((form) => form.text === text))
      forms.push({ encoding, text, caseInsensitive });
  };
  add('raw', value);
  add('JSON-escaped', JSON.stringify(value).slice(1, -1));
  add('URL-encoded', encodeURIComponent(value), true);
  add('form-encoded', new URLSearchParams({ v: value }).toString().slice(2), true);
  const bytes = Buffer.from(value, 'utf8');
  add('hex', bytes.toString('hex'), true);
  // Inside `base64(prefix + secret)` (Basic auth `id:secret`, cookies) the secret's own characters
  // depend on its byte alignment; check the fully determined middle at all three alignments.
  for (let shift = 0; shift < 3; shift += 1) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    const start = shift === 0 ? 0 : 4;
    const end = Math.floor((shift + bytes.length) / 3) * 4;
    const core = encoded.slice(start, end);
    if (core.length >= 8) {
      add(`base64 (alignment ${shift})`, core);
      add(`base64url (alignment ${shift})`, core.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  return forms;
}

/**
 * A character that no JSON line should hold as it is: C0 controls (JSON escapes them; a raw one, a
 * line feed above all, forges or breaks a line), DEL, C1 controls (U+009B is the CSI of terminal
 * escape sequences, U+0085 a line break to some readers), the line and paragraph separators, and the
 * hidden format characters the logger escapes: the bidirectional controls and the invisible ones
 * (what shows a text as another), taken from `util/hidden-characters.ts` so that a character added
 * there is looked for here too.
 */
const UNSHOWN = new RegExp(
  `[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]|${BIDI_CONTROL.source}|${INVISIBLE_CHARACTER.source}`,
  'u',
);

/** The first character of `UNSHOWN` in `line`, as `U+009B at 57`, or undefined. */
export function unshownCharacter(line: string): string | undefined {
  const found = UNSHOWN.exec(line);
  if (found === null) return undefined;
  return `${codePoint(found[0])} at ${found.index}`;
}

/** A member that holds a head/tail fragment of a token or code, as a JSON line writes it. */
const MASKED_FRAGMENT = /"(?:token|code)_masked":/;

export interface LeakHarnessOptions extends Pick<LoggerOptions, 'level'> {
  /**
   * The server runs with masks enabled (development with `logging.maskedSecrets`): fragments in the
   * log and the JSON-lines sink are expected. Without it, one fails `assertNoLeaks()`.
   */
  maskedFragments?: boolean;
}

/**
 * `level`: what the server's logger keeps (`trace` by default, every line; a test of what a quieter
 * server logs names its level).
 */
export function createLeakHarness(options: LeakHarnessOptions = {}): LeakHarness {
  const logLines: string[] = [];
  const auditRecords: AuditRecord[] = [];
  const secrets: RegisteredSecret[] = [];
  const files: string[] = [];
  const extra: Array<{ source: string; text: string }> = [];
  const buses: AuditBus[] = [];
  let partial = '';

  const destination = {
    write(chunk: string) {
      const text = partial + chunk;
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      logLines.push(...lines.filter((line) => line.length > 0));
    },
  };

  return {
    loggerOptions: { destination, level: options.level ?? 'trace' },
    logLines,
    auditRecords,
    attach(target) {
      buses.push(target.audit);
      target.audit.subscribe({
        name: 'leak-harness',
        receive: (record) => {
          auditRecords.push(structuredClone(record) as AuditRecord);
        },
      });
    },
    registerSecret(value, label) {
      assert.ok(
        value.length >= MIN_SECRET_LENGTH,
        `registerSecret: secrets shorter than ${MIN_SECRET_LENGTH} characters match by accident`,
      );
      secrets.push({ label: label ?? `secret #${secrets.length + 1}`, forms: encodedForms(value) });
    },
    watchFile(path) {
      files.push(path);
    },
    scanText(source, text) {
      extra.push({ source, text });
    },
    async assertNoLeaks() {
      for (const bus of buses) await bus.idle();
      assert.ok(secrets.length > 0, 'the leak harness checked nothing: register the secrets the test uses');
      const sources: Array<{ source: string; text: string }> = [
        ...logLines.map((text, index) => ({ source: `log line ${index + 1}`, text })),
        ...(partial ? [{ source: 'unterminated log line', text: partial }] : []),
        ...auditRecords.map((record, index) => ({
          source: `audit event ${index + 1} (${record.kind})`,
          text: JSON.stringify(record),
        })),
        ...files.flatMap((file) =>
          existsSync(file) ? [{ source: `file ${file}`, text: readFileSync(file, 'utf8') }] : [],
        ),
        ...extra,
      ];
      const leaks: string[] = [];
      const lines = [
        ...logLines.map((text, index) => ({ source: `log line ${index + 1}`, text })),
        ...(partial ? [{ source: 'unterminated log line', text: partial }] : []),
        ...files.flatMap((file) =>
          existsSync(file)
            ? readFileSync(file, 'utf8')
                .split('\n')
                .map((text, index) => ({ source: `line ${index + 1} of file ${file}`, text }))
            : [],
        ),
      ];
      for (const { source, text } of lines) {
        const unshown = unshownCharacter(text);
        // Named by place only: the line may hold a secret too.
        if (unshown !== undefined) leaks.push(`a raw ${unshown} in ${source}`);
        if (options.maskedFragments !== true && MASKED_FRAGMENT.test(text))
          leaks.push(`a masked fragment of a token or code in ${source}, with masks meant to be off`);
      }
      for (const { source, text } of sources) {
        const lowered = text.toLowerCase();
        for (const secret of secrets) {
          for (const form of secret.forms) {
            const found = form.caseInsensitive
              ? lowered.includes(form.text.toLowerCase())
              : text.includes(form.text);
            if (found) {
              // The message names the secret by label and shows the context with the value cut out.
              const shown = cutOut(text, form.text, form.caseInsensitive);
              leaks.push(`${secret.label} (${form.encoding}) in ${source}: ${shown}`);
            }
          }
        }
      }
      assert.equal(leaks.length, 0, `secrets or raw control characters leaked:\n${leaks.join('\n')}`);
    },
  };
}

function cutOut(text: string, needle: string, caseInsensitive: boolean): string {
  const escaped = needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const replaced = text.replace(new RegExp(escaped, caseInsensitive ? 'gi' : 'g'), '[SECRET]');
  return replaced.length > 400 ? `${replaced.slice(0, 400)}…` : replaced;
}
