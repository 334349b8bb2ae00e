import type { Kysely } from 'kysely';
import { ACCOUNT_CONSOLE_CLIENT_ID } from '../applications/account-console.ts';
import type { ApplicationService } from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { csrfField, formatTime } from '../console/ui.ts';
import type { Database } from '../db/schema.ts';
import { html, type Html } from '../http/pages/layout.ts';
import type { TokenRevocationService } from '../tokens/revocation.ts';
import { selectUserSessions, type UserSession } from '../tokens/store.ts';

/**
 * The account page's sessions: every browser where the person is signed in, and "sign out
 * everywhere", which ends them all (this one too), revokes the person's codes and tokens, removes the
 * grants and tells the applications by back-channel logout — the service `aa-oidc user sign-out`
 * uses. It asks first, showing what ends.
 */
export interface SessionDependencies {
  applications: Pick<ApplicationService, 'findByClientId'>;
  tokens: Pick<TokenRevocationService, 'signOutUser'>;
  db: Kysely<Database>;
}

export const SIGN_OUT_EVERYWHERE_PATH = '/account/sign-out-everywhere';

const HOW: Readonly<Record<string, string>> = {
  pwd: 'password',
  otp: 'code',
  eve_sso: 'EVE Online',
};

/** The applications signed in through the sessions, by name (the console itself left out). */
async function applicationNames(
  deps: SessionDependencies,
  sessions: readonly UserSession[],
): Promise<Map<string, string>> {
  const clientIds = [...new Set(sessions.flatMap((session) => session.clientIds))]
    .filter((clientId) => clientId !== ACCOUNT_CONSOLE_CLIENT_ID)
    .sort();
  const apps = await Promise.all(
    clientIds.map(
      async (clientId) => [clientId, (await deps.applications.findByClientId(clientId))?.name] as const,
    ),
  );
  return new Map(apps.map(([clientId, name]) => [clientId, name ?? clientId]));
}

function appsOf(session: UserSession, names: ReadonlyMap<string, string>): string {
  return (
    session.clientIds
      .map((clientId) => names.get(clientId))
      .filter((name) => name !== undefined)
      .join(', ') || 'none yet'
  );
}

/** The "Where you are signed in" section of the account page. */
export async function sessionsSection(deps: SessionDependencies, request: ConsoleRequest): Promise<Html> {
  const sessions = await selectUserSessions(deps.db, request.visitor!.id);
  const names = await applicationNames(deps, sessions);
  const current = request.session?.uid;
  return html`<section aria-labelledby="sessions">
    <h2 id="sessions">Where you are signed in</h2>
    <ul class="sessions">
      ${sessions.map(
        (session) =>
          html`<li>
            ${session.uid !== null && session.uid === current ? html`<strong>This browser</strong>: ` : ''}signed
            in ${formatTime(session.loginAt)}
            ${session.amr.length > 0 ? html`with ${session.amr.map((method) => HOW[method] ?? method).join(' and ')}` : ''}
            <br /><span class="note"
              >Applications: ${appsOf(session, names)} · until ${formatTime(session.expiresAt)}</span
            >
          </li>`,
      )}
    </ul>
    <p><a class="button danger" href="${SIGN_OUT_EVERYWHERE_PATH}">Sign out everywhere…</a></p>
  </section>`;
}

export function sessionRoutes(deps: SessionDependencies): ConsoleRoute[] {
  return [
    {
      method: 'GET',
      path: SIGN_OUT_EVERYWHERE_PATH,
      access: 'signed_in',
      async handle(request) {
        const sessions = await selectUserSessions(deps.db, request.visitor!.id);
        const names = [...(await applicationNames(deps, sessions)).values()];
        request.render(
          'Sign out everywhere?',
          html`<h1>Sign out everywhere?</h1>
            <div class="warn">
              <ul>
                <li>
                  You are signed out in every browser: ${sessions.length} session(s), this one included.
                </li>
                <li>
                  ${
                    names.length > 0
                      ? html`${names.join(', ')} stop working for you until you sign in and allow them again;
                        the applications that support it are told to sign you out.`
                      : 'Every application you allowed asks you to sign in and allow it again.'
                  }
                </li>
              </ul>
            </div>
            <p>Do this when you lost a device or signed in somewhere you should not have.</p>
            <form method="post" action="${SIGN_OUT_EVERYWHERE_PATH}">
              ${csrfField(request.session)}
              <div class="actions">
                <button type="submit" class="danger">Sign out everywhere</button>
                <a href="/account#sessions">Cancel</a>
              </div>
            </form>`,
        );
      },
    },
    {
      method: 'POST',
      path: SIGN_OUT_EVERYWHERE_PATH,
      access: 'signed_in',
      async handle(request) {
        const username = request.visitor!.username;
        await deps.tokens.signOutUser(username, {
          note: 'signed out everywhere on the account page',
          actor: `self:${username}`,
        });
        // This browser's session ended too: the landing page says so, signed out.
        request.seeOther('/?signed-out=everywhere');
      },
    },
  ];
}
