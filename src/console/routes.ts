import { ACCOUNT_CONSOLE_CALLBACK_PATH, ACCOUNT_CONSOLE_CLIENT_ID } from '../applications/account-console.ts';
import type { UserProfile } from '../directory/port.ts';
import type { Branding } from '../http/pages/branding.ts';
import { html } from '../http/pages/layout.ts';
import { SEND_ONCE_SCRIPT } from '../http/pages/send-once.ts';
import { CONSOLE_SCRIPT_PATH, type ConsoleRoute } from './http.ts';
import { type ConsoleSessions, CSRF_FIELD, safeReturnPath, SIGN_IN_PATH } from './session.ts';

/**
 * The console's own routes: the landing page, signing in and out, and the one script (progressive
 * enhancement: the copy buttons; every page works without it).
 */
export interface ConsoleRouteDependencies {
  sessions: ConsoleSessions;
  branding: Branding;
  issuer: string;
  /** `logout.rpInitiated`: the provider's logout endpoint exists, and Sign out goes through it. */
  rpInitiatedLogout: boolean;
  /**
   * People sign in here with a password (the built-in directory, or Alliance Auth's passwords): the
   * account page's password section is one of its contents. Off (EVE Online alone), that section
   * only says there is none, and the landing page does not offer it; nor does it to a member whose
   * Alliance Auth password does not sign in here (`UserProfile.keptPassword`).
   */
  passwordSignIn: boolean;
  loadUser(accountId: string): Promise<UserProfile | undefined>;
}

export { CONSOLE_SCRIPT_PATH };

const CONSOLE_SCRIPT = `'use strict';
${SEND_ONCE_SCRIPT}
for (const button of document.querySelectorAll('button[data-copy]')) {
  const field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(field.value);
      button.textContent = 'Copied';
    } catch {
      field.select();
    }
  });
}
`;

export function consoleRoutes(deps: ConsoleRouteDependencies): ConsoleRoute[] {
  const origin = new URL(deps.issuer).origin;
  return [
    {
      method: 'GET',
      path: '/',
      access: 'public',
      async handle({ ctx, render }) {
        const session = await deps.sessions.providerSession(ctx);
        const user = session ? await deps.loadUser(session.accountId) : undefined;
        const signedIn = user && user.active ? user : undefined;
        // A password kept elsewhere that does not sign in here is no way in for this member: not offered.
        const offersPassword =
          deps.passwordSignIn && (signedIn?.keptPassword ?? 'verifiable') === 'verifiable';
        render(
          deps.branding.name,
          html`<h1>${deps.branding.name}</h1>
            ${signedIn ? '' : signedOutNote(ctx.query['signed-out'])}
            <p>
              One sign-in for the applications of ${deps.branding.name}. Applications send you here to sign
              in; what each of them may see is on your account page.
            </p>
            ${
              signedIn
                ? html`<p>You are signed in as <strong>${signedIn.username}</strong>.</p>
                    <ul>
                      <li>
                        <a href="/account">Your account</a>:
                        ${offersPassword ? 'your apps, sessions, password and two-factor sign-in' : 'your apps, sessions and two-factor sign-in'}
                      </li>
                      ${
                        signedIn.superuser
                          ? html`<li>
                              <a href="/admin">Administration</a>: applications, users, keys and logs
                            </li>`
                          : ''
                      }
                    </ul>`
                : html`<p><a class="button" href="/account">Sign in to your account</a></p>`
            }
            ${
              deps.branding.supportUrl
                ? html`<p>Need help? <a href="${deps.branding.supportUrl}">Contact support</a>.</p>`
                : ''
            }`,
        );
      },
    },
    {
      method: 'GET',
      path: SIGN_IN_PATH,
      access: 'public',
      refusesHead: true,
      handle({ ctx }) {
        const target = typeof ctx.query.return === 'string' ? ctx.query.return : undefined;
        // `again=1` (signInAgainPath): the login is asked for even when the provider session is live.
        deps.sessions.startSignIn(ctx, safeReturnPath(target), { forceLogin: ctx.query.again === '1' });
      },
    },
    {
      method: 'GET',
      path: ACCOUNT_CONSOLE_CALLBACK_PATH,
      access: 'public',
      refusesHead: true,
      async handle({ ctx, render }) {
        const result = await deps.sessions.completeSignIn(ctx);
        if (!result.ok) {
          render(
            'Sign-in failed',
            html`<h1>Sign-in failed</h1>
              <p class="alert" role="alert">${result.reason}</p>
              <p><a href="/account">Try again</a></p>`,
            { status: 400 },
          );
          return;
        }
        // A page, not a redirect: the next request then starts on this site, so the SameSite=Strict
        // console cookie goes with it even when the sign-in began with a link from another site (a
        // redirect would carry on the navigation that other site started). Its refresh needs no script.
        // Its header is the member's who has just signed in: the request came without that session.
        const visitor = await deps.loadUser(result.session.accountId);
        render(
          'Signed in',
          html`<h1>Signed in</h1>
            <p class="ok" role="status">You are signed in. <a href="${result.returnTo}">Continue</a>.</p>`,
          {
            refreshTo: result.returnTo,
            ...(visitor?.active && { signedIn: { session: result.session, visitor } }),
          },
        );
      },
    },
    {
      method: 'POST',
      path: '/account/sign-out',
      // A member signed out already (in another tab, say) who presses "Sign out" is not asked to
      // sign in first; with a console session, the form's CSRF token is checked against it.
      access: 'session_if_any',
      async handle({ ctx, form, session, render, seeOther }) {
        if (!deps.rpInitiatedLogout) {
          // No logout endpoint to go through (it would answer 404): the provider session of this
          // browser ends here, so that the next visit asks for the password. The applications are
          // not told, as with any sign-out while RP-initiated logout is off (check W003).
          const signOutHere = async () => {
            await deps.sessions.signOutHere(ctx);
            seeOther('/?signed-out=browser');
          };
          if (session) return signOutHere();
          // Without the console session no CSRF token was checked: the provider session (its cookie
          // lost, or another tab's session in its place) ends only by the form of the question below,
          // whose token is bound to it, as the provider's own logout page asks in the other mode.
          deps.sessions.clear(ctx);
          const provider = await deps.sessions.providerSession(ctx);
          if (!provider) return seeOther('/?signed-out=browser');
          if (deps.sessions.verifySignOutToken(provider, form.get(CSRF_FIELD))) return signOutHere();
          const user = await deps.loadUser(provider.accountId);
          render(
            'Sign out?',
            html`<h1>Sign out?</h1>
              <p>
                This browser is still signed in${user ? html` as <strong>${user.username}</strong>` : ''}.
                Sign out of it here? Applications you signed in to keep their own sign-in.
              </p>
              <form method="post" action="/account/sign-out">
                <input type="hidden" name="${CSRF_FIELD}" value="${deps.sessions.signOutToken(provider)}" />
                <div class="actions">
                  <button type="submit">Sign out</button>
                  <a href="/">Cancel</a>
                </div>
              </form>`,
          );
          return;
        }
        if (session) deps.sessions.signOut(ctx, session);
        else deps.sessions.clear(ctx);
        // Nothing left to end: the landing page says who is signed in (no one).
        if (!session && !(await deps.sessions.providerSession(ctx))) return seeOther('/');
        // The provider's own logout ends the session (and tells the session's applications); the
        // note signOut leaves lets its page confirm by itself, for this console client only. A
        // provider session without this console's (a cookie lost) meets the logout question.
        const params = new URLSearchParams({
          client_id: ACCOUNT_CONSOLE_CLIENT_ID,
          post_logout_redirect_uri: `${origin}/`,
        });
        seeOther(`${deps.issuer}/logout/?${params.toString()}`);
      },
    },
    {
      method: 'GET',
      path: CONSOLE_SCRIPT_PATH,
      access: 'public',
      handle({ ctx }) {
        ctx.set('Cache-Control', 'public, max-age=86400');
        ctx.type = 'text/javascript; charset=utf-8';
        ctx.body = CONSOLE_SCRIPT;
      },
    },
  ];
}

/** The landing page's word after a sign-out (`?signed-out=`), shown only to someone signed out. */
function signedOutNote(which: unknown) {
  if (which === 'everywhere') return html`<p class="ok" role="status">You are signed out everywhere.</p>`;
  if (which === 'browser')
    return html`<p class="ok" role="status">
      You are signed out in this browser. Applications you signed in to keep their own sign-in: sign out of
      each of them too.
    </p>`;
  return '';
}
