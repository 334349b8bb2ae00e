import type Koa from 'koa';
import type { UserProfile } from '../directory/port.ts';
import { pagePolicy, setPageHeaders } from '../http/content-security-policy.ts';
import type { Branding } from '../http/pages/branding.ts';
import { isForeignForm } from '../http/foreign-form.ts';
import { html, type Html, page } from '../http/pages/layout.ts';
import {
  answerUnreadForm,
  isUnreadForm,
  MALFORMED_FORM_MESSAGE,
  MALFORMED_QUERY_MESSAGE,
  parseFormBody,
  readBodyBytes,
  repeatedField,
  repeatedFieldMessage,
  RequestBodyTooLarge,
  type UnreadForm,
  unreadForm,
  wellFormedQuery,
} from '../http/request-body.ts';
import { noteDatabaseUnavailable } from '../http/unavailable.ts';
import type { Logger } from '../logging/logger.ts';
import { requestLog } from '../logging/request-context.ts';
import { type ConsoleSession, type ConsoleSessions, CSRF_FIELD, safeReturnPath } from './session.ts';

/**
 * The console's HTTP layer: a table of routes (so that tests can enumerate every one of them), the
 * access check in front of every route, CSRF on every POST, and one way to render a page.
 *
 * Access is decided before anything else runs, so every route of one access level answers alike:
 * no session → 302 into the provider's sign-in (a HEAD, to `/account/sign-in`, starting nothing);
 * signed in without the right → 403.
 */
/**
 * Who may use a route: anyone (`public`); anyone, with the console session when there is one and then
 * a form CSRF-checked against it (`session_if_any`: "Sign out", pressed in a tab whose session another
 * tab ended, is not sent to sign in first); a signed-in member; a superuser.
 */
export type Access = 'public' | 'session_if_any' | 'signed_in' | 'superuser';

export interface ConsoleRoute {
  method: 'GET' | 'POST';
  /** `/admin/apps/:clientId`: `:name` segments are parameters (one path segment each). */
  path: string;
  access: Access;
  /**
   * A GET that changes something: starts a flow (`/account/sign-in` sets the sign-in's flow cookie,
   * replacing one in progress) or uses something up once (the sign-in's callback redeems its code).
   * A HEAD, which must change nothing (RFC 9110 §9.2.1), is refused (405) instead of answered as the
   * GET.
   */
  refusesHead?: true;
  /**
   * The fields of a POST's form that may be given more than once (a group of checkboxes); any other
   * given twice refuses the form (400) before the route sees it (`repeatedField`).
   */
  multiValued?: readonly string[];
  handle(request: ConsoleRequest): Promise<void> | void;
}

/** What a route handler gets. */
export interface ConsoleRequest {
  ctx: Koa.Context;
  params: Readonly<Record<string, string>>;
  /** The form of a POST (checked for CSRF already); empty for a GET. */
  form: URLSearchParams;
  /** Present on `signed_in` and `superuser` routes, and on `session_if_any` ones when there is one. */
  session: ConsoleSession | undefined;
  visitor: UserProfile | undefined;
  /**
   * Renders a page in the console layout (header links, sign-out button, branding). `signedIn`: the
   * header is that member's, not the request's (the sign-in's callback, whose request came without
   * the console session it has just begun).
   */
  render(
    title: string,
    body: Html,
    options?: {
      status?: number;
      refreshTo?: string;
      signedIn?: { session: ConsoleSession; visitor: UserProfile };
    },
  ): void;
  /** 303 to a console path (after a POST). */
  seeOther(path: string): void;
}

/** Everything the access check needs beyond the session. */
export interface ConsoleGate {
  /** The user behind a provider account id; undefined when unknown. */
  loadUser(accountId: string): Promise<UserProfile | undefined>;
  /**
   * Extra condition for superuser routes (two-factor sign-in when required): `ok` lets the request
   * through, `handled` means it answered the request itself.
   */
  superuserCheck?(request: ConsoleRequest): Promise<'ok' | 'handled'>;
}

export interface ConsoleHttpDependencies {
  sessions: ConsoleSessions;
  gate: ConsoleGate;
  branding: Branding;
  logger: Logger;
  /** Origin of the issuer: POSTs from any other origin are refused. */
  origin: string;
  /** Where the console routes live (`/`, `/account…`, `/admin…`, `/assets/console.js`). */
  routes: readonly ConsoleRoute[];
}

const FORM_LIMIT = 64 * 1024;

/** The console's one script (console/routes.ts), on every page: progressive enhancement only. */
export const CONSOLE_SCRIPT_PATH = '/assets/console.js';

interface CompiledRoute {
  route: ConsoleRoute;
  pattern: RegExp;
  names: string[];
  multiValued: ReadonlySet<string>;
}

function compile(route: ConsoleRoute): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(segment.slice(1));
      return '([^/]+)';
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}$`), names, multiValued: new Set(route.multiValued) };
}

/** `account` of `/account/sign-in`, `` of `/`. */
function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

/** Security headers of every console response: personal data, never cached, framed or leaked. */
export function consoleHeaders(ctx: Koa.Context): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  setPageHeaders(ctx, pagePolicy({ scripts: ["'self'"], formsToSelf: true }));
}

/** The header links: account, administration (superusers), and the sign-out button. */
function consoleNav(session: ConsoleSession | undefined, visitor: UserProfile | undefined): Html {
  if (!session || !visitor) return html``;
  return html`<nav aria-label="Console">
    <ul>
      <li><a href="/account">Your account</a></li>
      ${visitor.superuser ? html`<li><a href="/admin">Administration</a></li>` : ''}
      <li>
        <form method="post" action="/account/sign-out" class="inline-form">
          <input type="hidden" name="${CSRF_FIELD}" value="${session.csrfToken}" />
          <button type="submit" class="link">Sign out</button>
        </form>
      </li>
    </ul>
  </nav>`;
}

export function consoleMiddleware(deps: ConsoleHttpDependencies): Koa.Middleware {
  const compiled = deps.routes.map(compile);
  // Most requests are for the provider, not the console: the first segment of the path tells
  // them apart (`/o/…` is no console route's), unless a route starts with a parameter.
  const firstSegments = new Set(deps.routes.map((route) => firstSegment(route.path)));
  const anyFirstSegment = [...firstSegments].some((segment) => segment.startsWith(':'));
  const log = deps.logger.child({ component: 'console' });

  const renderPage = (
    ctx: Koa.Context,
    session: ConsoleSession | undefined,
    visitor: UserProfile | undefined,
    title: string,
    body: Html,
    status = 200,
    refreshTo?: string,
  ) => {
    ctx.status = status;
    ctx.type = 'html';
    const requestId = (ctx.state as { requestId?: string }).requestId;
    ctx.body = page(
      title,
      html`${body}
        <script src="${CONSOLE_SCRIPT_PATH}" defer></script>`,
      {
        branding: deps.branding,
        wide: true,
        nav: consoleNav(session, visitor),
        ...(status >= 400 && requestId ? { requestId } : {}),
        ...(refreshTo !== undefined && { refreshTo }),
      },
    );
  };

  const refuse = (
    ctx: Koa.Context,
    session: ConsoleSession | undefined,
    visitor: UserProfile | undefined,
    status: number,
    title: string,
    message: Html | string,
  ) =>
    renderPage(
      ctx,
      session,
      visitor,
      title,
      html`<h1>${title}</h1>
        <p class="alert" role="alert">${message}</p>`,
      status,
    );

  const handle: Koa.Middleware = async (ctx, next) => {
    const matches = compiled
      .map((entry) => ({ entry, match: entry.pattern.exec(ctx.path) }))
      .filter((candidate) => candidate.match !== null);
    if (matches.length === 0) return next();
    consoleHeaders(ctx);
    const method = ctx.method === 'HEAD' ? 'GET' : ctx.method;
    const found = matches.find(
      ({ entry: { route } }) => route.method === method && !(ctx.method === 'HEAD' && route.refusesHead),
    );
    if (!found) {
      ctx.set('Allow', [...new Set(matches.map((candidate) => candidate.entry.route.method))].join(', '));
      return refuse(
        ctx,
        undefined,
        undefined,
        405,
        'Method not allowed',
        'This address does not take that method.',
      );
    }
    const { route, names, multiValued } = found.entry;
    const params: Record<string, string> = {};
    try {
      names.forEach((name, index) => {
        const value = decodeURIComponent(found.match![index + 1]!);
        // No id or name holds a NUL byte, and PostgreSQL refuses one in a query parameter.
        if (value.includes('\0')) throw new URIError(`NUL byte in :${name}`);
        params[name] = value;
      });
    } catch {
      return refuse(ctx, undefined, undefined, 400, 'Bad address', 'This address is malformed.');
    }
    // Koa's reading of `?q=%ff` is U+FFFD (`%zz`, a lone `%`: the text as sent): refused, as under the
    // issuer, before a sign-in carries it as the address to return to.
    if (!wellFormedQuery(ctx)) {
      return refuse(ctx, undefined, undefined, 400, 'Bad address', MALFORMED_QUERY_MESSAGE);
    }

    let session: ConsoleSession | undefined;
    let visitor: UserProfile | undefined;
    if (route.access === 'session_if_any') {
      session = await deps.sessions.current(ctx);
    } else if (route.access !== 'public') {
      session = await deps.sessions.current(ctx);
      if (!session) {
        const returnTo =
          method === 'GET'
            ? safeReturnPath(ctx.originalUrl, route.path.startsWith('/admin') ? '/admin' : '/account')
            : route.path.startsWith('/admin')
              ? '/admin'
              : '/account';
        return deps.sessions.startSignIn(ctx, returnTo);
      }
      visitor = await deps.gate.loadUser(session.accountId);
      if (!visitor || !visitor.active) {
        deps.sessions.clear(ctx);
        return refuse(ctx, undefined, undefined, 403, 'Account unavailable', 'This account is deactivated.');
      }
      if (route.access === 'superuser' && !visitor.superuser) {
        return refuse(
          ctx,
          session,
          visitor,
          403,
          'Administrators only',
          'The administration pages are for superusers. Your account page is at /account.',
        );
      }
    }

    let form = new URLSearchParams();
    if (method === 'POST') {
      const parsed = await readForm(ctx);
      if (parsed === 'too_large') {
        // The rest of the body is not wanted: the connection closes after the answer.
        ctx.set('Connection', 'close');
        return refuse(ctx, session, visitor, 413, 'Form too large', 'This form is larger than 64 KiB.');
      }
      const foreign = isForeignForm(ctx, deps.origin);
      if (parsed === 'malformed' && !foreign) {
        return refuse(ctx, session, visitor, 400, 'Form not understood', MALFORMED_FORM_MESSAGE);
      }
      // Refused unread, as on the sign-in pages, the session and its CSRF token kept for the form sent
      // again; from another site the answer stays the 403 below, which says nothing of the form.
      if (isUnreadForm(parsed) && !foreign) {
        return refuse(ctx, session, visitor, 415, 'Form not understood', answerUnreadForm(ctx, parsed));
      }
      // Before its CSRF token is checked, which may itself be the field given twice: no route sees it.
      const repeated =
        parsed instanceof URLSearchParams && !foreign ? repeatedField(parsed, multiValued) : undefined;
      if (repeated !== undefined) {
        return refuse(ctx, session, visitor, 400, 'Form not understood', repeatedFieldMessage(repeated));
      }
      const csrfChecked =
        route.access !== 'public' && (route.access !== 'session_if_any' || session !== undefined);
      if (
        foreign ||
        !(parsed instanceof URLSearchParams) ||
        (csrfChecked && (!session || !deps.sessions.verifyCsrf(session, parsed.get(CSRF_FIELD))))
      ) {
        return refuse(
          ctx,
          session,
          visitor,
          403,
          'Form refused',
          'This form has expired or did not come from this site. Go back, reload the page and try again.',
        );
      }
      form = parsed;
    }

    const request: ConsoleRequest = {
      ctx,
      params,
      form,
      session,
      visitor,
      render: (title, body, options = {}) =>
        renderPage(
          ctx,
          options.signedIn?.session ?? session,
          options.signedIn?.visitor ?? visitor,
          title,
          body,
          options.status,
          options.refreshTo,
        ),
      seeOther: (path) => {
        ctx.status = 303;
        ctx.redirect(path);
      },
    };
    try {
      if (route.access === 'superuser' && deps.gate.superuserCheck) {
        if ((await deps.gate.superuserCheck(request)) === 'handled') return;
      }
      await route.handle(request);
    } catch (error) {
      // A database that is down or busy (aa-oidc's, or Alliance Auth's): answered 503 "try again"
      // by the outer layer, as any request.
      if (noteDatabaseUnavailable(ctx, error)) return;
      requestLog(ctx, log).error(
        { err: { name: (error as Error).name, message: (error as Error).message }, route: route.path },
        'console request failed',
      );
      refuse(ctx, session, visitor, 500, 'Something went wrong', 'The request could not be completed.');
    }
  };
  return (ctx, next) =>
    anyFirstSegment || firstSegments.has(firstSegment(ctx.path)) ? handle(ctx, next) : next();
}

async function readForm(
  ctx: Koa.Context,
): Promise<URLSearchParams | 'too_large' | 'malformed' | UnreadForm | undefined> {
  // Refused unread as on the sign-in pages (src/oidc/interactions/common.ts); no body at all is no form.
  const unread = unreadForm(ctx);
  if (unread) return unread;
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  // A declared length over the limit is refused before any of it is read.
  if ((ctx.request.length ?? 0) > FORM_LIMIT) return 'too_large';
  let body: Buffer;
  try {
    body = await readBodyBytes(ctx.req, FORM_LIMIT);
  } catch (error) {
    return error instanceof RequestBodyTooLarge ? 'too_large' : undefined;
  }
  return parseFormBody(body) ?? 'malformed';
}
