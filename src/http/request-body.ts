import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';

/** A request body longer than the route accepts: answered 413, the connection then closed. */
export class RequestBodyTooLarge extends Error {
  override name = 'RequestBodyTooLarge';
  readonly limit: number;
  constructor(limit: number) {
    super(`the request body is larger than ${limit} bytes`);
    this.limit = limit;
  }
}

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
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      received += buffer.length;
      if (received > limit) {
        stop();
        // Whatever is still coming is read and dropped while the answer goes out.
        req.resume();
        reject(new RequestBodyTooLarge(limit));
        return;
      }
      chunks.push(buffer);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
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
  if (!ctx.req.headers['content-type']?.includes(';')) return false;
  // Koa's reading of the header: the parameter unquoted (`charset="UTF-8"`), '' when there is none.
  const charset = ctx.request.charset.toLowerCase();
  return charset !== '' && charset !== 'utf-8' && charset !== 'utf8';
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
