import type Koa from 'koa';
import { sameText } from '../util/same-text.ts';

/**
 * The console's "Sign out" ends the provider session with one click. The console cannot end it
 * itself (only the provider's end_session flow may: it revokes the grants and tells the
 * applications), and the provider's logout confirmation asks "Sign out?" of every relying party.
 * So the console's sign-out (a same-site POST with the console's CSRF token) leaves a note for the
 * logout page that follows it: this cookie, naming the provider session it was made in. The logout
 * page of the account console client that finds the note for its session submits the provider's own
 * form (its xsrf field bound to the session) by itself; the note is read once.
 *
 * - SameSite=Strict and set only by that POST: a link or form from another site reaches the logout
 *   page without it, and is asked.
 * - Signed, and bound to the provider session: a note from an earlier session does nothing.
 * - One minute, and only below the logout path: it never outlives the redirect it goes with, and no
 *   other page sees it.
 */
export const CONSOLE_SIGN_OUT_COOKIE = '_aa_oidc_console_sign_out';

const NOTE_LIFETIME_MS = 60 * 1000;

export interface ConsoleSignOutCookieOptions {
  issuer: string;
  /** Secure cookies (production). */
  secure: boolean;
}

/** The logout endpoint and its confirmation below it (`/o/logout/`, `/o/logout/confirm`). */
function notePath(issuer: string): string {
  return `${new URL(issuer).pathname.replace(/\/+$/, '')}/logout`;
}

function noteCookie(options: ConsoleSignOutCookieOptions, maxAge?: number) {
  return {
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: options.secure,
    path: notePath(options.issuer),
    overwrite: true,
    signed: true,
    ...(maxAge === undefined ? {} : { maxAge }),
  };
}

/** Notes that the member of provider session `sessionUid` pressed the console's "Sign out". */
export function noteConsoleSignOut(
  ctx: Koa.Context,
  sessionUid: string,
  options: ConsoleSignOutCookieOptions,
): void {
  ctx.cookies.set(
    CONSOLE_SIGN_OUT_COOKIE,
    `${sessionUid}.${Date.now()}`,
    noteCookie(options, NOTE_LIFETIME_MS),
  );
}

/**
 * True when the request carries a fresh note made in provider session `sessionUid`. The note is
 * forgotten either way: it answers one logout page.
 */
export function takeConsoleSignOut(
  ctx: Koa.Context,
  sessionUid: string | undefined,
  options: ConsoleSignOutCookieOptions,
): boolean {
  const value = ctx.cookies.get(CONSOLE_SIGN_OUT_COOKIE, { signed: true });
  if (value === undefined) return false;
  ctx.cookies.set(CONSOLE_SIGN_OUT_COOKIE, null, noteCookie(options));
  const match = /^([A-Za-z0-9_-]{1,64})\.(\d{1,15})$/.exec(value);
  if (!match || !sessionUid) return false;
  const age = Date.now() - Number(match[2]);
  return age >= 0 && age <= NOTE_LIFETIME_MS && sameText(match[1]!, sessionUid);
}
