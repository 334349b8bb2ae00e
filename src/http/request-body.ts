import type { IncomingMessage } from 'node:http';

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
 * Reads a request body of at most `limit` bytes as UTF-8. Past the limit it rejects with
 * `RequestBodyTooLarge` and leaves the request readable (its remainder is drained, not destroyed),
 * so that the 413 can still be written on the connection and logged.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
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
      resolve(Buffer.concat(chunks).toString('utf8'));
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
