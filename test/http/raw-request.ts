import http from 'node:http';
import type { Browser } from '../helpers/server.ts';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One HTTP request with headers fetch() will not send as given (`Host`), to a server on loopback.
 * With `browser`, its cookies for the path go along (and, with `keepCookies`, the answer's are kept).
 */
export function rawRequest(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    /** A Buffer is sent byte for byte (bytes that are not UTF-8). */
    body?: string | Buffer;
    browser?: Browser;
    /** Store the answer's cookies in `browser`. */
    keepCookies?: boolean;
    /** The request target as sent (an absolute form `http://host/path`), instead of the URL's path and query. */
    target?: string;
  } = {},
): Promise<RawResponse> {
  const target = new URL(url);
  const headers: Record<string, string> = { ...options.headers };
  if (options.browser) {
    const cookie = cookieHeader(options.browser, target);
    if (cookie) headers.cookie = cookie;
  }
  if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: options.target ?? `${target.pathname}${target.search}`,
        method: options.method ?? 'GET',
        headers,
        agent: false,
      },
      (response) => {
        if (options.browser && options.keepCookies)
          keep(options.browser, response.headers['set-cookie'] ?? []);
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

function keep(browser: Browser, lines: readonly string[]): void {
  for (const line of lines) {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const index = pair!.indexOf('=');
    const path = attributes.find((attribute) => /^path=/i.test(attribute))?.slice(5) ?? '/';
    const key = `${path}|${pair!.slice(0, index)}`;
    const value = pair!.slice(index + 1);
    if (value === '' || attributes.some((attribute) => /^expires=thu, 01 jan 1970/i.test(attribute)))
      browser.cookies.delete(key);
    else browser.cookies.set(key, value);
  }
}

/** The `Cookie` header `browser` sends to `target`'s path. */
export function cookieHeader(browser: Browser, target: URL): string {
  return [...browser.cookies.entries()]
    .filter(([key]) => target.pathname.startsWith(key.split('|')[0]!))
    .map(([key, value]) => `${key.split('|')[1]}=${value}`)
    .join('; ');
}

/** The four headers of `setPageHeaders` that `response` lacks. */
export function missingPageHeaders(response: RawResponse): string[] {
  return [
    response.headers['x-frame-options'] === 'DENY' ? undefined : 'X-Frame-Options',
    /frame-ancestors 'none'/.test(String(response.headers['content-security-policy']))
      ? undefined
      : 'Content-Security-Policy',
    response.headers['x-content-type-options'] === 'nosniff' ? undefined : 'X-Content-Type-Options',
    response.headers['referrer-policy'] === 'same-origin' ? undefined : 'Referrer-Policy',
  ].filter((header) => header !== undefined);
}
