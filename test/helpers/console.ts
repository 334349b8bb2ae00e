import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.ts';
import { Browser, type Endpoint, formField, PASSWORD, signIn } from './server.ts';

/**
 * Signs a fetch-driven browser in to the web console through the provider's own login page; returns
 * the browser (holding the provider session and the console cookie).
 */
export async function consoleSignIn(
  server: Endpoint,
  username: string,
  options: { password?: string; returnTo?: string; browser?: Browser } = {},
): Promise<Browser> {
  const browser = options.browser ?? new Browser();
  const start = `${server.origin}/account/sign-in?return=${encodeURIComponent(options.returnTo ?? '/account')}`;
  const response = await signIn(browser, server, start, {
    username,
    password: options.password ?? PASSWORD,
  });
  const body = await response.text();
  assert.equal(response.status, 200, `the console callback page, not: ${body.slice(0, 300)}`);
  assert.match(body, /http-equiv="refresh"/, 'the callback page continues by itself');
  return browser;
}

/** GETs a console page; returns status, body and the CSRF token of its forms (if any). */
export async function consoleGet(
  browser: Browser,
  url: string,
): Promise<{ status: number; body: string; csrf: string | undefined; location: string | null }> {
  const response = await browser.fetch(url);
  const body = await response.text();
  let csrf: string | undefined;
  try {
    csrf = formField(body, 'csrf_token');
  } catch {
    csrf = undefined;
  }
  return { status: response.status, body, csrf, location: response.headers.get('location') };
}

/** POSTs a console form (with the given CSRF token unless `csrf` is null). */
export async function consolePost(
  browser: Browser,
  url: string,
  csrf: string | null,
  fields: Record<string, string | string[]> = {},
): Promise<{ status: number; body: string; location: string | null }> {
  const form = new URLSearchParams();
  if (csrf !== null) form.set('csrf_token', csrf);
  for (const [key, value] of Object.entries(fields)) {
    for (const item of Array.isArray(value) ? value : [value]) form.append(key, item);
  }
  const response = await browser.fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(url).origin },
    body: form.toString(),
  });
  return { status: response.status, body: await response.text(), location: response.headers.get('location') };
}

/** The visible text of a page: no style, no tags, entities decoded, whitespace collapsed. */
export function pageText(body: string): string {
  return body
    .replace(/<style>[\s\S]*?<\/style>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&amp;', '&')
    .replace(/\s+/g, ' ')
    .replace(/ ([.,;:)])/g, '$1')
    .trim();
}

/**
 * The cells of the table row that links to `href` (a list page's row of one user, one application),
 * as text, keyed by the table's column headings; undefined when no row links there.
 */
export function tableRowLinkingTo(body: string, href: string): Record<string, string> | undefined {
  const headings = [...body.matchAll(/<th scope="col">([\s\S]*?)<\/th>/g)].map((match) =>
    pageText(match[1]!),
  );
  const row = [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)]
    .map((match) => match[1]!)
    .find((cells) => cells.includes(`href="${href}"`));
  if (row === undefined) return undefined;
  const cells = [...row.matchAll(/<td\b[^>]*>([\s\S]*?)<\/td>/g)].map((match) => pageText(match[1]!));
  assert.equal(cells.length, headings.length, `a cell under each heading: ${headings.join(', ')}`);
  return Object.fromEntries(headings.map((heading, index) => [heading, cells[index]!]));
}

/** The ids of a page's form controls that take the focus on load (`autofocus`), in page order. */
export function autofocusedIds(body: string): string[] {
  return [...body.matchAll(/<(?:input|select|textarea)\b[^>]*>/g)]
    .filter((match) => /\sautofocus[\s/>]/.test(match[0]))
    .map((match) => /\sid="([^"]*)"/.exec(match[0])?.[1] ?? '(no id)');
}

/**
 * True when an answer to `browser` removed the console cookie (the sign-in it named is forgotten), under
 * either name (`__Host-` in production).
 */
export function consoleCookieForgotten(browser: Browser): boolean {
  return browser.setCookieLines.some((line) =>
    /^(?:__Host-)?_aa_oidc_console=;.*expires=Thu, 01 Jan 1970/i.test(line),
  );
}

/**
 * The texts of a page's alerts that take the focus on load (`tabindex="-1" autofocus`: a refusal about
 * the form as a whole), in page order.
 */
export function focusedAlerts(body: string): string[] {
  return [...body.matchAll(/<p class="alert" role="alert"([^>]*)>([\s\S]*?)<\/p>/g)]
    .filter((match) => /\stabindex="-1"/.test(match[1]!) && /\sautofocus(?:[\s/]|$)/.test(match[1]!))
    .map((match) =>
      match[2]!
        .replace(/<[^>]+>/g, '')
        .replace(/\s+/g, ' ')
        .trim(),
    );
}

/**
 * Moves the sign-in of the user's sessions `minutes` back (forward when negative), as if it had been
 * that long ago: the provider's stored session, which every request reads again.
 */
export async function signedInAgo(db: Kysely<Database>, userId: number, minutes: number): Promise<void> {
  const sessions = await db
    .selectFrom('oidc_payload')
    .select(['id', 'payload'])
    .where('model', '=', 'Session')
    .where('user_id', '=', String(userId))
    .execute();
  assert.ok(sessions.length > 0, 'a session to age');
  for (const session of sessions) {
    const payload = JSON.parse(session.payload) as { loginTs: number };
    await db
      .updateTable('oidc_payload')
      .set({ payload: JSON.stringify({ ...payload, loginTs: payload.loginTs - minutes * 60 }) })
      .where('model', '=', 'Session')
      .where('id', '=', session.id)
      .execute();
  }
}
