import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';
import { assertNever } from '../util/assert-never.ts';

/** A request body longer than the route accepts: answered 413, the connection then closed. */
export class RequestBodyTooLarge extends Error {
  override name = 'RequestBodyTooLarge';
  readonly limit: number;
  constructor(limit: number) {
    super(`the request body is larger than ${limit} bytes`);
    this.limit = limit;
  }
}

/** The first allocation for a body; it doubles as the body grows, up to its limit. */
const INITIAL_BODY_BYTES = 4096;

/** True when the request announces a body longer than `limit` (Content-Length). */
export function declaresMoreThan(req: IncomingMessage, limit: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && /^\d+$/.test(declared) && Number(declared) > limit;
}

/**
 * Reads a request body of at most `limit` bytes, as they were sent. Past the limit it rejects with
 * `RequestBodyTooLarge` and leaves the request readable (its remainder is drained, not destroyed),
 * so that the 413 can still be written on the connection and logged.
 */
export function readBodyBytes(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (declaresMoreThan(req, limit)) {
    req.resume();
    return Promise.reject(new RequestBodyTooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    // The bytes are copied into one buffer as they come: a body trickled a byte a packet would
    // otherwise be kept as that many Buffers, some hundred bytes each, 56 KiB becoming megabytes.
    let body = Buffer.alloc(Math.min(limit, INITIAL_BODY_BYTES));
    let received = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (received + buffer.length > limit) {
        stop();
        // Whatever is still coming is read and dropped while the answer goes out.
        req.resume();
        reject(new RequestBodyTooLarge(limit));
        return;
      }
      if (received + buffer.length > body.length) {
        const grown = Buffer.alloc(Math.min(limit, Math.max(body.length * 2, received + buffer.length)));
        body.copy(grown, 0, 0, received);
        body = grown;
      }
      buffer.copy(body, received);
      received += buffer.length;
    };
    const onEnd = () => {
      stop();
      resolve(body.subarray(0, received));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * Waits until a request body has all come (or more than `limit` bytes of it), and puts what it read
 * back in front of the rest, unread (`readable.unshift`), for a reader that
 * keeps a Buffer per chunk it reads: oidc-provider's, which would keep a body trickled a byte a packet
 * as that many Buffers, some hundred bytes each, 56 KiB becoming megabytes. A body that comes in one
 * chunk is put back as it came; in more, from the second on, it is copied into one buffer (of the
 * declared length, or doubling up to the limit). Nothing is refused here: the reader meets the same
 * bytes, length and end as it would have, and answers them as it does. False when the request failed
 * or was closed first (its client gone, its time up): there is nothing left to read, nor anyone to answer.
 */
export function gatherBody(req: IncomingMessage, limit: number): Promise<boolean> {
  // All of it has come (or none will): it waits in the request's own buffer, which the reader takes in one read.
  if (req.complete || declaresMoreThan(req, limit)) return Promise.resolve(true);
  const declared = req.headers['content-length'];
  const capacity = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
  if (capacity === 0) return Promise.resolve(true);
  // A read asked for before listening: the listener would otherwise ask for one in the next tick,
  // which, should an empty (chunked) body end meanwhile, would end the stream before the reader reads it.
  req.read(0);
  return new Promise((resolve) => {
    let first: Buffer | undefined;
    let gathered: Buffer | undefined;
    let received = 0;
    const stop = (ready: boolean) => {
      req.off('readable', onReadable);
      req.off('error', failed);
      req.off('close', failed);
      resolve(ready);
    };
    const failed = () => stop(false);
    const putBack = (over?: Buffer) => {
      stop(true);
      if (over) req.unshift(over);
      if (gathered) req.unshift(gathered.subarray(0, received));
      else if (first) req.unshift(first);
    };
    const take = (chunk: Buffer): boolean => {
      if (received + chunk.length > limit) return false;
      if (!first && !gathered) first = chunk;
      else {
        if (!gathered || received + chunk.length > gathered.length) {
          const size = Math.min(
            limit,
            Math.max(received + chunk.length, capacity ?? INITIAL_BODY_BYTES, (gathered?.length ?? 0) * 2),
          );
          const grown = Buffer.alloc(size);
          (gathered ?? first!).copy(grown, 0, 0, received);
          gathered = grown;
          first = undefined;
        }
        chunk.copy(gathered, received);
      }
      received += chunk.length;
      return true;
    };
    const onReadable = () => {
      // A read of exactly what is there: a read past it, at the end, would end the stream.
      while (req.readableLength > 0) {
        const chunk = req.read(req.readableLength) as Buffer | null;
        if (chunk === null) break;
        if (!take(chunk)) return putBack(chunk);
      }
      // The end is known before the stream ends: it is put back while the stream can still take it.
      if (req.complete) putBack();
    };
    req.on('readable', onReadable);
    req.on('error', failed);
    req.on('close', failed);
  });
}

/** What a form that `parseFormBody` refuses is answered (400). */
export const MALFORMED_FORM_MESSAGE =
  'This form is malformed: its fields must be UTF-8 text with well-formed %-escapes, as a browser sends them.';

/**
 * The fields of an application/x-www-form-urlencoded body, or undefined when it is not UTF-8 text
 * with well-formed %-escapes. Anything else would reach the routes with U+FFFD (or a stray `%`) in
 * place of what was sent, and be stored as such: a group named "\uFFFD", a password no one can type.
 */
export function parseFormBody(body: Buffer): URLSearchParams | undefined {
  if (!isUtf8(body)) return undefined;
  const text = body.toString('utf8');
  return hasWellFormedEscapes(text) ? new URLSearchParams(text) : undefined;
}

/** No field of the form may be given more than once. */
const SINGLE_VALUED_ONLY: ReadonlySet<string> = new Set();

/**
 * The first field a form gives more than once that may be given only once, that is any field but
 * `multiValued` (a group of checkboxes: `groups=Blue&groups=Red`); undefined when there is none.
 * A browser sends each field of our pages' forms once: a repeated one (`decision=allow&decision=deny`)
 * was put there by hand, and taking either value would be a guess. It is looked at before anything
 * of the form is used, its CSRF token included, so that nothing is half done.
 */
export function repeatedField(
  form: URLSearchParams,
  multiValued: ReadonlySet<string> = SINGLE_VALUED_ONLY,
): string | undefined {
  const seen = new Set<string>();
  for (const name of form.keys()) {
    if (seen.has(name) && !multiValued.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** A field name the refusal names as sent: one of the plain names our forms use, never any text sent. */
const PLAIN_FIELD_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** What a form that gives a single-valued field more than once (`repeatedField`) is answered (400). */
export function repeatedFieldMessage(name: string): string {
  const field = PLAIN_FIELD_NAME.test(name) ? `the field ${name}` : 'one of its fields';
  return `This form gives ${field} more than once, where it takes one value: nothing of it was used. Go back, reload the page and try again.`;
}

/** What a form declared in a charset other than UTF-8 is answered (415). */
export const FORM_CHARSET_MESSAGE =
  'This form declares a charset other than UTF-8: send it as UTF-8 (application/x-www-form-urlencoded, with no charset or charset=utf-8).';

/**
 * True when the request's Content-Type names a charset other than UTF-8 (`charset=ISO-8859-1`):
 * its bytes would otherwise be read as UTF-8 all the same, `é` sent as 0xE9 refused as malformed or,
 * in plain ASCII, taken for what it may not mean. A type without parameters (what browsers send) is
 * not parsed at all.
 */
export function declaresNonUtf8Charset(ctx: Koa.Context): boolean {
  return nonUtf8Charset(ctx) !== undefined;
}

/**
 * The charset other than UTF-8 that the request's Content-Type names (lower case, unquoted:
 * `charset="ISO-8859-1"` is `iso-8859-1`; of several, the last, which Koa's reading and the provider's
 * take); undefined when it names none, only UTF-8, or its parameters cannot be read
 * (`contentTypeUnreadable`).
 */
export function nonUtf8Charset(ctx: Koa.Context): string | undefined {
  const parameters = contentTypeParameters(ctx);
  return parameters
    ?.filter(([name, value]) => name === 'charset' && value !== '')
    .map(([, value]) => value.toLowerCase())
    .findLast((charset) => charset !== 'utf-8' && charset !== 'utf8');
}

/** What a form whose Content-Type parameters cannot be read is answered (415). */
export const FORM_CONTENT_TYPE_MESSAGE =
  "This form's Content-Type header cannot be read: send it as application/x-www-form-urlencoded, with no charset or charset=utf-8.";

/**
 * True when the request's Content-Type has parameters that are not `; name=value` pairs (RFC 9110
 * §5.6.6: `; charset`, `; charset="utf-8`, `; charset=utf 8`), which Koa's reading takes for no
 * charset at all: what charset it declares cannot be told, so a form is not read as UTF-8 on a guess.
 */
export function contentTypeUnreadable(ctx: Koa.Context): boolean {
  return contentTypeParameters(ctx) === undefined;
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED_STRING = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
/**
 * One `OWS ";" OWS [ parameter ]` of RFC 9110 §5.6.6, where the last one ended (sticky); whitespace
 * around the `=` is let pass, as Koa's reading (the content-type package) does.
 */
const PARAMETER = new RegExp(`[\\t ]*;[\\t ]*(?:(${TOKEN})[\\t ]*=[\\t ]*(${TOKEN}|${QUOTED_STRING}))?`, 'y');

/**
 * The parameters of the request's Content-Type (name lower case, value unquoted), in order; [] when
 * it has none; undefined when they cannot be read. Empty ones (`;;`, a `;` at the end) are allowed,
 * as RFC 9110 allows them (Koa's own reading refuses them, and with them the charset beside them).
 */
function contentTypeParameters(ctx: Koa.Context): Array<[string, string]> | undefined {
  const header = ctx.req.headers['content-type'];
  const start = header?.indexOf(';') ?? -1;
  if (start < 0) return [];
  // Trailing whitespace cut without a regular expression, which would try every position of a long run.
  let end = header!.length;
  while (end > start && (header![end - 1] === ' ' || header![end - 1] === '\t')) end -= 1;
  const text = header!.slice(0, end);
  const parameters: Array<[string, string]> = [];
  for (let at = start; at < end;) {
    PARAMETER.lastIndex = at;
    const match = PARAMETER.exec(text);
    if (!match) return undefined;
    const [, name, value] = match;
    if (name !== undefined && value !== undefined) {
      const unquoted = value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
      parameters.push([name.toLowerCase(), unquoted]);
    }
    at = PARAMETER.lastIndex;
  }
  return parameters;
}

/** What a form body with a content coding is answered (415, with `Accept-Encoding: identity`). */
export const CONTENT_ENCODING_MESSAGE =
  'Content encodings (gzip, deflate, br) are not accepted: send the form body uncompressed.';

/**
 * True when the request declares a content coding other than none (`identity`): its bytes are read
 * as they come, so a compressed form would be refused as malformed or missing its fields.
 */
export function declaresContentCoding(ctx: Koa.Context): boolean {
  const coding = ctx.req.headers['content-encoding'];
  return coding !== undefined && coding.trim().toLowerCase() !== 'identity' && coding.trim() !== '';
}

/**
 * Why a form is refused unread (415): a content coding (gzip…), a body of another type than
 * application/x-www-form-urlencoded (JSON, text/plain, multipart/form-data: the pages' forms declare
 * no enctype, so a browser posts none of these from them), a Content-Type whose parameters cannot be
 * read, a charset other than UTF-8.
 */
export type UnreadForm = 'encoded' | 'other_type' | 'content_type' | 'charset';

const UNREAD_FORMS: ReadonlySet<unknown> = new Set<UnreadForm>([
  'encoded',
  'other_type',
  'content_type',
  'charset',
]);

/** True for a reader's answer that says why a form was refused unread. */
export function isUnreadForm(value: unknown): value is UnreadForm {
  return UNREAD_FORMS.has(value);
}

const FORM_TYPE = 'application/x-www-form-urlencoded';

/**
 * Why a form body is refused unread (`UnreadForm`); undefined when it is to be read, or when there
 * is no body at all (no form, refused as such by the caller). A content coding (`declaresContentCoding`)
 * is looked at before the type, since the type says nothing of it; then the type; then its parameters
 * (`contentTypeUnreadable`, `declaresNonUtf8Charset`). The same on the sign-in, account and admin pages.
 */
export function unreadForm(ctx: Koa.Context): UnreadForm | undefined {
  if (declaresContentCoding(ctx)) return 'encoded';
  const kind = ctx.is(FORM_TYPE);
  if (kind === null) return undefined;
  if (kind === false) return 'other_type';
  if (contentTypeUnreadable(ctx)) return 'content_type';
  return declaresNonUtf8Charset(ctx) ? 'charset' : undefined;
}

/** What a body of another type than a form is answered (415): the type sent, and the one taken. */
function formTypeMessage(ctx: Koa.Context): string {
  // The type only, without its parameters, at most 100 characters: the page escapes it.
  const sent = ctx.get('Content-Type').split(';')[0]!.trim().slice(0, 100) || 'a body without a type';
  return `This address takes a form sent as ${FORM_TYPE}, not ${sent}.`;
}

/**
 * Sets the headers of the 415 that refuses a form unread (the connection closes after the answer,
 * as the body is not read; `Accept-Encoding: identity` for a content coding), and returns what it says:
 * the same on the sign-in pages, the account and the admin pages.
 */
export function answerUnreadForm(ctx: Koa.Context, why: UnreadForm): string {
  ctx.set('Connection', 'close');
  switch (why) {
    case 'encoded':
      ctx.set('Accept-Encoding', 'identity');
      return CONTENT_ENCODING_MESSAGE;
    case 'other_type':
      return formTypeMessage(ctx);
    case 'content_type':
      return FORM_CONTENT_TYPE_MESSAGE;
    case 'charset':
      return FORM_CHARSET_MESSAGE;
    default:
      return assertNever(why);
  }
}

/** What a query that `wellFormedQuery` refuses is answered (400). */
export const MALFORMED_QUERY_MESSAGE =
  'This address is malformed: its query must be UTF-8 text with well-formed %-escapes, as a browser sends it.';

/**
 * False when the request's query holds a %-escape that is not UTF-8 text (`%ff`, `%e2%82`, `%zz`, a
 * lone `%`): Koa's reading puts U+FFFD (or the `%` itself) in its place. Only a request target with
 * a `%` in it is looked at further.
 */
export function wellFormedQuery(ctx: Koa.Context): boolean {
  if (!ctx.req.url?.includes('%')) return true;
  return hasWellFormedEscapes(ctx.querystring);
}

/** True when every %-escape of a form body is a `%XX` of a UTF-8 sequence (`%ff`, `%e2%82`, `%zz` are not). */
function hasWellFormedEscapes(body: string): boolean {
  if (!body.includes('%')) return true;
  try {
    // A multi-byte sequence cut by `&` or `=` fails here too: its continuation bytes must follow as escapes.
    decodeURIComponent(body);
    return true;
  } catch {
    return false;
  }
}
