import { createHash, createHmac, randomBytes } from 'node:crypto';
import type Koa from 'koa';
import { ACCOUNT_CONSOLE_CALLBACK_PATH, ACCOUNT_CONSOLE_CLIENT_ID } from '../applications/account-console.ts';
import type { ConsoleSignIn, ProviderSessionInfo } from '../oidc/console-sign-in.ts';
import { noteConsoleSignOut } from '../oidc/console-sign-out.ts';
import { hostCookieName } from '../util/host-cookie.ts';
import { sameText } from '../util/same-text.ts';

export type { ProviderSessionInfo } from '../oidc/console-sign-in.ts';

/**
 * How the console (account page and admin UI) knows who is there. The console is a relying party of
 * this provider that shares the provider's session:
 *
 * 1. Signing in sends the browser to the provider's authorization endpoint as the built-in console
 *    client (code flow, PKCE S256, `state`), so the person meets the provider's own login page, or
 *    nothing at all when the provider session already exists.
 * 2. The callback checks `state`, redeems the code in-process (one use, PKCE checked, bound to the
 *    provider session it was issued in) and sets the console cookie: HttpOnly, SameSite=Strict, Secure
 *    in production, naming that provider session.
 * 3. Every request reads the provider session (through the provider) and the console cookie; they must
 *    name the same session, and the user must still be active. Signing out anywhere (the provider's
 *    logout, "sign out everywhere", a deactivation) ends the console session on its next request.
 * 4. The console's "Sign out" forgets the console cookie and sends the browser to the provider's
 *    logout, with a note that the member asked for it here (oidc/console-sign-out.ts): the logout
 *    page then confirms by itself, and the provider ends its session and tells the applications.
 *    With RP-initiated logout off there is no such page: the console ends the provider session of
 *    this browser itself, and no application is told (`signOutHere`); without the console session,
 *    only after a question of its own whose form carries a token of that provider session
 *    (`signOutToken`).
 *
 * The console cookie also carries the nonce from which the CSRF token of every form is derived. Both
 * console cookies are host-wide (Path=/), and take the `__Host-` prefix when Secure (util/host-cookie.ts).
 */
export const CONSOLE_COOKIE = '_aa_oidc_console';
/** The sign-in in progress (state, PKCE verifier, where to return): SameSite=Lax, ten minutes. */
export const CONSOLE_FLOW_COOKIE = '_aa_oidc_console_flow';
export const CSRF_FIELD = 'csrf_token';
/** Where a sign-in starts (its GET; console/routes.ts). */
export const SIGN_IN_PATH = '/account/sign-in';

/**
 * A sign-in that asks for the password (or EVE Online) again even with a live provider session, then
 * returns to `returnTo`: for a change that wants a recent sign-in (the account page's two-factor setup).
 */
export function signInAgainPath(returnTo: string): string {
  return `${SIGN_IN_PATH}?${new URLSearchParams({ return: returnTo, again: '1' }).toString()}`;
}

const FLOW_LIFETIME_MS = 10 * 60 * 1000;

export interface ConsoleSessionOptions {
  issuer: string;
  /** Secure cookies (production). */
  secure: boolean;
  /** HMAC key of the CSRF tokens (derived from the secret key). */
  csrfKey: Buffer;
  /** The provider's side: its session, and redeeming the console's codes. */
  provider: ConsoleSignIn;
}

/** A signed-in console visitor: the provider session and the console cookie agree. */
export interface ConsoleSession extends ProviderSessionInfo {
  /** The token every state-changing form carries. */
  csrfToken: string;
}

export interface SignInOptions {
  /** Ask for the password again even with a live provider session. */
  forceLogin?: boolean;
}

interface FlowState {
  state: string;
  verifier: string;
  returnTo: string;
  startedAt: number;
}

/**
 * Only console paths are valid return targets (never another origin), with at most a section of the
 * page to show (`/account#two-factor`: letters, digits, `-` and `_` only).
 */
const RETURN_PATH =
  /^\/(?:account|admin)(?:\/[A-Za-z0-9._~%:@!$&'()*+,;=/-]*)?(?:\?[^#\s]*)?(?:#[A-Za-z0-9_-]{1,64})?$/;

/**
 * A `.` or `..` segment, also %-encoded (`%2e%2E`): the browser resolves it (`/account/../o/logout/` is
 * `/o/logout/`, `/account/..//evil.example` is `//evil.example`), so the path it names is no console path.
 */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

export function safeReturnPath(candidate: string | undefined | null, fallback = '/account'): string {
  if (!candidate || candidate.length > 1000 || candidate.startsWith('//') || !RETURN_PATH.test(candidate))
    return fallback;
  const path = candidate.split(/[?#]/, 1)[0]!;
  if (path.split('/').some((segment) => DOT_SEGMENT.test(segment))) return fallback;
  return candidate;
}

const s256 = (value: string) => createHash('sha256').update(value, 'ascii').digest('base64url');

export interface ConsoleSessions {
  /** The provider session of the request, if someone is signed in (read-only pages use this alone). */
  providerSession(ctx: Koa.Context): Promise<ProviderSessionInfo | undefined>;
  /** The console session: the provider session and a console cookie naming it. */
  current(ctx: Koa.Context): Promise<ConsoleSession | undefined>;
  /**
   * Starts a sign-in: remembers the flow and redirects (302) to the provider's authorization endpoint.
   * A HEAD starts none (it must change nothing, RFC 9110 §9.2.1, and a new flow cookie would replace
   * the one of a sign-in in progress): it is redirected (302) to `/account/sign-in`, whose GET starts it.
   */
  startSignIn(ctx: Koa.Context, returnTo: string, options?: SignInOptions): void;
  /**
   * The callback: checks the flow, redeems the code, sets the console cookie. Returns where to go
   * next and the console session just begun, or a reason to show when the sign-in cannot be completed.
   */
  completeSignIn(
    ctx: Koa.Context,
  ): Promise<{ ok: true; returnTo: string; session: ConsoleSession } | { ok: false; reason: string }>;
  /** True when `submitted` is the CSRF token of this console session. */
  verifyCsrf(session: ConsoleSession, submitted: unknown): boolean;
  /** Forgets the console cookie (the provider session is ended by the provider's logout). */
  clear(ctx: Koa.Context): void;
  /**
   * The console's "Sign out" (a POST whose CSRF token was checked): forgets the console cookie and
   * notes for the provider's logout page that follows that this session's member asked to sign out.
   */
  signOut(ctx: Koa.Context, session: ConsoleSession): void;
  /**
   * The console's "Sign out" when the provider has no logout endpoint (`logout.rpInitiated` off):
   * forgets the console cookie and ends this browser's provider session here, telling no application.
   */
  signOutHere(ctx: Koa.Context): Promise<void>;
  /**
   * The token of the "Sign out?" form offered, with RP-initiated logout off, to a browser that has the
   * provider session but not this console's (its cookie lost, or another tab's session in its place):
   * bound to that provider session, as a console session's CSRF token is to the console cookie, so
   * that no form without it, nor one of another session, ends the session.
   */
  signOutToken(session: ProviderSessionInfo): string;
  /** True when `submitted` is the `signOutToken` of this provider session. */
  verifySignOutToken(session: ProviderSessionInfo, submitted: unknown): boolean;
}

export function createConsoleSessions(options: ConsoleSessionOptions): ConsoleSessions {
  const origin = new URL(options.issuer).origin;
  const callback = `${origin}${ACCOUNT_CONSOLE_CALLBACK_PATH}`;
  const consoleCookie = hostCookieName(CONSOLE_COOKIE, options.secure);
  const flowCookie = hostCookieName(CONSOLE_FLOW_COOKIE, options.secure);
  const cookie = (sameSite: 'strict' | 'lax', maxAge?: number) => ({
    httpOnly: true,
    sameSite,
    secure: options.secure,
    path: '/',
    overwrite: true,
    signed: true,
    ...(maxAge === undefined ? {} : { maxAge }),
  });
  const csrfTokenFor = (uid: string, nonce: string) =>
    createHmac('sha256', options.csrfKey).update(`console:${uid}:${nonce}`).digest('base64url');
  // Another label than the console's tokens: neither is ever taken for the other.
  const signOutTokenFor = (uid: string) =>
    createHmac('sha256', options.csrfKey).update(`console-sign-out:${uid}`).digest('base64url');

  const providerSession: ConsoleSessions['providerSession'] = (ctx) => options.provider.providerSession(ctx);

  const clear: ConsoleSessions['clear'] = (ctx) => {
    ctx.cookies.set(consoleCookie, null, cookie('strict'));
  };

  const readConsoleCookie = (ctx: Koa.Context): { uid: string; nonce: string } | undefined => {
    const value = ctx.cookies.get(consoleCookie, { signed: true });
    const match = value ? /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{43})$/.exec(value) : null;
    return match ? { uid: match[1]!, nonce: match[2]! } : undefined;
  };

  return {
    providerSession,

    async current(ctx) {
      const cookieValue = readConsoleCookie(ctx);
      if (!cookieValue) return undefined;
      const session = await providerSession(ctx);
      if (!session || !sameText(session.uid, cookieValue.uid)) return undefined;
      return { ...session, csrfToken: csrfTokenFor(session.uid, cookieValue.nonce) };
    },

    startSignIn(ctx, returnTo, signInOptions = {}) {
      ctx.set('Cache-Control', 'no-store');
      if (ctx.method === 'HEAD') {
        ctx.status = 302;
        ctx.redirect(
          `${SIGN_IN_PATH}?${new URLSearchParams({ return: safeReturnPath(returnTo) }).toString()}`,
        );
        return;
      }
      const flow: FlowState = {
        state: randomBytes(24).toString('base64url'),
        verifier: randomBytes(32).toString('base64url'),
        returnTo: safeReturnPath(returnTo),
        startedAt: Date.now(),
      };
      ctx.cookies.set(
        flowCookie,
        Buffer.from(JSON.stringify(flow)).toString('base64url'),
        cookie('lax', FLOW_LIFETIME_MS),
      );
      const params = new URLSearchParams({
        client_id: ACCOUNT_CONSOLE_CLIENT_ID,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: callback,
        state: flow.state,
        code_challenge: s256(flow.verifier),
        code_challenge_method: 'S256',
        ...(signInOptions.forceLogin ? { prompt: 'login' } : {}),
      });
      ctx.status = 302;
      ctx.redirect(`${options.issuer}/authorize/?${params.toString()}`);
    },

    async completeSignIn(ctx) {
      const raw = ctx.cookies.get(flowCookie, { signed: true });
      ctx.cookies.set(flowCookie, null, cookie('lax'));
      let flow: FlowState | undefined;
      try {
        const parsed = raw
          ? (JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as FlowState)
          : undefined;
        if (parsed && typeof parsed.state === 'string' && typeof parsed.verifier === 'string') flow = parsed;
      } catch {
        flow = undefined;
      }
      if (!flow || Date.now() - flow.startedAt > FLOW_LIFETIME_MS)
        return { ok: false, reason: 'No sign-in is in progress in this browser (or it took too long).' };
      const state = ctx.query.state;
      if (typeof state !== 'string' || !sameText(state, flow.state))
        return { ok: false, reason: 'This answer does not belong to the sign-in started in this browser.' };
      if (typeof ctx.query.error === 'string')
        return { ok: false, reason: `The sign-in did not complete (${ctx.query.error.slice(0, 60)}).` };
      const value = ctx.query.code;
      if (typeof value !== 'string' || value.length === 0 || value.length > 200)
        return { ok: false, reason: 'The answer carries no authorization code.' };

      const code = await options.provider.redeemCode(value, {
        redirectUri: callback,
        codeChallenge: s256(flow.verifier),
      });
      if (!code)
        return { ok: false, reason: 'The authorization code is not valid (expired, used, or not ours).' };
      const session = await providerSession(ctx);
      if (!session || session.uid !== code.sessionUid || session.accountId !== code.accountId)
        return { ok: false, reason: 'The sign-in does not match the session of this browser.' };
      const nonce = randomBytes(32).toString('base64url');
      ctx.cookies.set(consoleCookie, `${session.uid}.${nonce}`, cookie('strict'));
      return {
        ok: true,
        returnTo: flow.returnTo,
        session: { ...session, csrfToken: csrfTokenFor(session.uid, nonce) },
      };
    },

    verifyCsrf(session, submitted) {
      return typeof submitted === 'string' && submitted.length > 0 && sameText(submitted, session.csrfToken);
    },

    clear,

    signOut(ctx, session) {
      clear(ctx);
      noteConsoleSignOut(ctx, session.uid, { issuer: options.issuer, secure: options.secure });
    },

    async signOutHere(ctx) {
      clear(ctx);
      await options.provider.endSession(ctx);
    },

    signOutToken: (session) => signOutTokenFor(session.uid),

    verifySignOutToken(session, submitted) {
      return (
        typeof submitted === 'string' &&
        submitted.length > 0 &&
        sameText(submitted, signOutTokenFor(session.uid))
      );
    },
  };
}
