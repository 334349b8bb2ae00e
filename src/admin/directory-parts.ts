import { ACCOUNT_CONSOLE_CLIENT_ID } from '../applications/account-console.ts';
import type { Application } from '../applications/types.ts';
import type { ConsoleRequest } from '../console/http.ts';
import { formAlert } from '../console/ui.ts';
import { type Consequence, summarizeConsequences } from '../db/unit-of-work.ts';
import type { UserProfile } from '../directory/port.ts';
import { html, type Html } from '../http/pages/layout.ts';
import type { DirectoryAdmin } from '../directory/builtin/types.ts';
import { DirectoryError } from '../directory/errors.ts';
import { type AdminDependencies, type AdminSection, renderAdmin } from './context.ts';

/**
 * What the directory pages of the admin UI (users, states, groups) share: where a user's pages are,
 * whether the directory is read-only here (Alliance Auth), and how the impact of a change is shown.
 */

export function userPath(id: number, suffix = ''): string {
  return `/admin/users/${id}${suffix}`;
}

/** True when the directory is read-only here (Alliance Auth): the directory pages change nothing. */
export function readOnly(deps: AdminDependencies): boolean {
  return deps.directoryAdmin === undefined;
}

/**
 * The admin interface for a write; the read-only refusal where there is none (the routes refuse
 * before they get here, so this is the last line, not the message people see).
 */
export function writableDirectory(deps: AdminDependencies): DirectoryAdmin {
  if (!deps.directoryAdmin)
    throw new DirectoryError('read_only', 'The directory is read-only here: change it in Alliance Auth.');
  return deps.directoryAdmin;
}

/** Where Alliance Auth manages its users (its own admin). */
export function allianceAuthNote(deps: AdminDependencies): Html {
  const login = deps.config.directory.allianceAuth.loginUrl;
  const admin = login ? new URL('/admin/', login).href : undefined;
  return html`<p class="note" role="note">
    Users, states and groups come from Alliance Auth and are read-only here.
    ${admin ? html`Change them in <a href="${admin}">Alliance Auth’s administration</a>.` : 'Change them in Alliance Auth.'}
  </p>`;
}

/**
 * The answer to a change of the directory while it is read-only (a form nobody was offered, or a
 * forged POST): 409, saying that nothing changed and where the change is made.
 */
export function readOnlyRefusal(
  request: ConsoleRequest,
  deps: AdminDependencies,
  section: AdminSection,
  back: { href: string; text: string },
): void {
  renderAdmin(
    request,
    section,
    'Read-only',
    html`<h1>Read-only</h1>
      ${formAlert('Nothing was changed: this directory is read-only in aa-oidc.')} ${allianceAuthNote(deps)}
      <p><a href="${back.href}">${back.text}</a></p>`,
    { status: 409 },
  );
}

/**
 * The status of a page that shows a refused directory change, its preview or its form: 409 when it
 * conflicts with what is there (a name or priority taken, a state with users, a whitelisted group,
 * a concurrent change), 400 for input that is wrong (its message names the field and what is valid).
 */
export function refusalStatus(error: DirectoryError): 400 | 409 {
  return error.code === 'conflict' ? 409 : 400;
}

export function affiliation(profile: UserProfile): string {
  const main = profile.mainCharacter;
  return [
    main.corporationName
      ? `${main.corporationName}${main.corporationTicker ? ` [${main.corporationTicker}]` : ''}`
      : '',
    main.allianceName ? `${main.allianceName}${main.allianceTicker ? ` <${main.allianceTicker}>` : ''}` : '',
    main.factionName ?? '',
  ]
    .filter(Boolean)
    .join(' · ');
}

/**
 * An application's name, linked to its page; the built-in account console (the account and admin
 * pages' own sign-in) has no page there, so it is named and not linked.
 */
export function appName(apps: ReadonlyMap<string, Application>, clientId: string): Html {
  if (clientId === ACCOUNT_CONSOLE_CLIENT_ID) return html`Account console (built in)`;
  const app = apps.get(clientId);
  return html`<a href="/admin/apps/${encodeURIComponent(clientId)}">${app?.name ?? clientId}</a>`;
}

export function appList(apps: ReadonlyMap<string, Application>, clientIds: readonly string[]): Html {
  return html`${clientIds.map((clientId, index) => html`${index > 0 ? ', ' : ''}${appName(apps, clientId)}`)}`;
}

export async function applicationsById(deps: AdminDependencies): Promise<Map<string, Application>> {
  const apps = await deps.applications.list();
  return new Map(apps.map((app) => [app.clientId, app]));
}

/** What a change would do, as its dry run reported it. */
export function impactList(
  consequences: readonly Consequence[],
  apps: ReadonlyMap<string, Application>,
  who: string,
): Html {
  const summary = summarizeConsequences(consequences);
  const tokensByApp = [...summary.tokensRevoked].filter(([clientId]) => clientId !== '');
  return html`<ul>
    <li>
      ${
        summary.accessLost.length > 0
          ? html`${who} can no longer use ${appList(apps, summary.accessLost)}.`
          : html`No application stops accepting ${who}.`
      }
    </li>
    <li>
      ${
        summary.logouts.length > 0
          ? html`Back-channel logout is sent to ${appList(apps, summary.logouts)}.`
          : 'No application receives a back-channel logout.'
      }
    </li>
    ${
      summary.tokensRevokedTotal > 0
        ? html`<li>
            ${summary.tokensRevokedTotal} code(s) and token(s) are
            revoked${
              tokensByApp.length > 0
                ? html` (${tokensByApp.map(
                    ([clientId, count], index) =>
                      html`${index > 0 ? ', ' : ''}${appName(apps, clientId)}: ${count}`,
                  )})`
                : ''
            }.
          </li>`
        : ''
    }
    ${summary.sessionsEnded > 0 ? html`<li>${summary.sessionsEnded} browser session(s) end.</li>` : ''}
  </ul>`;
}

/** The user named by the route's `:id`, if there is one. */
export async function loadProfile(
  deps: AdminDependencies,
  request: ConsoleRequest,
): Promise<UserProfile | undefined> {
  const raw = request.params.id ?? '';
  if (!/^\d{1,15}$/.test(raw)) return undefined;
  return deps.directory.profileById(Number(raw));
}

export function userNotFound(request: ConsoleRequest): void {
  renderAdmin(
    request,
    '/admin/users',
    'No such user',
    html`<h1>No such user</h1>
      <p class="alert" role="alert">No user has this id.</p>
      <p><a href="/admin/users">Users</a></p>`,
    { status: 404 },
  );
}
