import type { ConsoleRoute } from '../console/http.ts';
import type { StoredAuditEvent } from '../audit/store.ts';
import { doneMessage, formatTime, select } from '../console/ui.ts';
import type { KeptPassword, UserProfile } from '../directory/port.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { listTokens } from '../tokens/listing.ts';
import { selectUserGrants, selectUserSessions } from '../tokens/store.ts';
import { type AdminDependencies, renderAdmin } from './context.ts';
import {
  affiliation,
  allianceAuthNote,
  appList,
  appName,
  applicationsById,
  loadProfile,
  readOnly,
  userNotFound,
  userPath,
} from './directory-parts.ts';

/**
 * One user in the admin UI: state, groups, main character and affiliation, grants and live tokens
 * per application, live sessions, recent sign-ins, and the links to the actions (with the Alliance
 * Auth directory, whose users are managed there, only signing out and revoking tokens).
 */

export const USER_DONE: Readonly<Record<string, string>> = {
  deactivate: 'Deactivated: every application refuses the user from the next request.',
  activate: 'Activated.',
  state: 'State changed.',
  access: 'OIDC access held directly changed.',
  'add-group': 'Added to the group.',
  'remove-group': 'Removed from the group.',
  password: 'Password set.',
  'revoke-tokens': 'Codes and tokens revoked; the applications were told.',
  'sign-out': 'Signed out everywhere.',
  'reset-two-factor': 'Two-factor sign-in reset: the user can enrol again.',
  delete: 'User deleted.',
  unchanged: 'Nothing changed.',
};

/**
 * What a member's Alliance Auth password is worth here (`UserProfile.keptPassword`). One AA takes but
 * aa-oidc cannot check is stored anew when it is changed there, with the first hasher of AA's
 * `PASSWORD_HASHERS` (Django's default, PBKDF2, is one aa-oidc verifies).
 */
const KEPT_PASSWORD_FACTS: Readonly<Record<KeptPassword, string>> = {
  verifiable: 'kept by Alliance Auth; signs in here',
  unverifiable:
    'kept by Alliance Auth in a form aa-oidc cannot check (a hasher other than PBKDF2, Argon2 or scrypt, such as bcrypt, or costs beyond its limits): the member signs in with EVE Online until it is changed in Alliance Auth',
  unusable: 'none at Alliance Auth: the member signs in with EVE Online',
};

/**
 * The password line of a member of Alliance Auth, from the profile the page loaded (read with the
 * rest of it, the hash left behind): only where aa-oidc signs in with those passwords
 * (`AA_OIDC_AA_PASSWORD_LOGIN`); without it every member signs in with EVE Online.
 */
function keptPasswordFact(deps: AdminDependencies, { keptPassword }: UserProfile): Html | '' {
  if (!keptPassword || !deps.config.directory.allianceAuth.passwordLogin) return '';
  return html`<dt>Password</dt>
    <dd>${KEPT_PASSWORD_FACTS[keptPassword]}</dd>`;
}

/** The most sign-ins a user's page lists. */
const SIGN_INS_SHOWN = 10;
/**
 * How many of a user's newest audit events the page reads to find them: every refresh adds two
 * `token_issued` events (and a `token_revoked`), so a sign-in hours old is behind hundreds of them.
 * Bounded so that a user refreshing for weeks does not make the page read their whole history.
 */
const SIGN_IN_SEARCH_WINDOW = 10_000;

/** A sign-in to an application: the access token of a code exchange (a refresh's has its own grant type). */
function isSignIn(event: StoredAuditEvent): boolean {
  return event.record.grant_type === 'authorization_code' && event.record.token_type === 'access_token';
}

export function userDetailRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const admin = deps.directoryAdmin;
  return [
    {
      method: 'GET',
      path: '/admin/users/:id',
      access: 'superuser',
      async handle(request) {
        const profile = await loadProfile(deps, request);
        if (!profile) return userNotFound(request);
        const now = Date.now();
        const [record, apps, states, groups, grants, sessions, tokens, issued, twoFactor] = await Promise.all(
          [
            admin ? admin.loadUserProfile(profile.id) : Promise.resolve(undefined),
            applicationsById(deps),
            deps.directory.listStates(),
            deps.directory.listGroups(),
            selectUserGrants(deps.db, profile.id, now),
            selectUserSessions(deps.db, profile.id, now),
            listTokens(deps.db, { userId: profile.id }),
            deps.auditStore.listUserWindow(profile.id, {
              kinds: ['token_issued'],
              within: SIGN_IN_SEARCH_WINDOW,
            }),
            deps.twoFactor.status(profile.id),
          ],
        );
        const liveTokens = new Map<string, number>();
        for (const token of tokens)
          if (token.status === 'active' && token.clientId !== null)
            liveTokens.set(token.clientId, (liveTokens.get(token.clientId) ?? 0) + 1);
        const appIds = [...new Set([...grants.map((grant) => grant.clientId), ...liveTokens.keys()])].sort();
        const grantOf = new Map(grants.map((grant) => [grant.clientId, grant]));
        const signIns = issued.events.filter(isSignIn).slice(0, SIGN_INS_SHOWN);
        // Fewer than the page shows, and events left unread: say where the older sign-ins may be.
        const searchedBack =
          issued.olderAt !== undefined && signIns.length < SIGN_INS_SHOWN
            ? html`<p class="note">
                ${signIns.length === 0 ? 'None' : 'No other'} among the user's newest
                ${SIGN_IN_SEARCH_WINDOW.toLocaleString('en')} audit events:
                <a
                  href="/admin/audit?${new URLSearchParams({
                    user: profile.username,
                    kind: 'token_issued',
                    until: new Date(issued.olderAt + 1).toISOString(),
                  }).toString()}"
                  >look for older ones in the audit log</a
                >.
              </p>`
            : '';
        const editable = !readOnly(deps);
        // Deactivating or deleting oneself is refused here (user-actions.ts): no button for it.
        const ownAccount = request.visitor?.id === profile.id;
        const deleteLink = html`<a class="button danger" href="${userPath(profile.id, '/delete')}"
          >Delete user…</a
        >`;
        // Signing out and revoking change only aa-oidc's tokens and sessions: offered with either directory.
        const tokenActions = html`<a class="button secondary" href="${userPath(profile.id, '/sign-out')}"
            >Sign out everywhere…</a
          >
          <a class="button secondary" href="${userPath(profile.id, '/revoke-tokens')}">Revoke tokens…</a>
          ${
            twoFactor.enrolled || twoFactor.pending
              ? html`<a class="button secondary" href="${userPath(profile.id, '/reset-two-factor')}"
                  >Reset two-factor…</a
                >`
              : ''
          }`;
        const groupNames = new Set(profile.groups.map((item) => item.name));
        // An empty picker would send no group at all: offered only when there is one to add.
        const addable = groups.filter((item) => !groupNames.has(item.name)).map((item) => item.name);
        const main = profile.mainCharacter;
        renderAdmin(
          request,
          '/admin/users',
          profile.username,
          html`<h1>${profile.username}</h1>
            ${doneMessage(USER_DONE, request.ctx.query.done)} ${readOnly(deps) ? allianceAuthNote(deps) : ''}
            <dl class="facts">
              <dt>User id</dt>
              <dd>${profile.id}</dd>
              <dt>Email</dt>
              <dd>${profile.email || '—'}</dd>
              <dt>Active</dt>
              <dd>${profile.active ? 'yes' : 'no: every application refuses this user'}</dd>
              <dt>Superuser</dt>
              <dd>${profile.superuser ? 'yes' : 'no'}</dd>
              <dt>OIDC access held directly</dt>
              <dd>${profile.oidcAccess ? 'yes' : 'no'}</dd>
              <dt>State</dt>
              <dd>
                ${profile.state ? `${profile.state.name}${profile.state.oidcAccess ? ' (grants OIDC access)' : ''}` : 'none'}
              </dd>
              <dt>Groups</dt>
              <dd>${profile.groups.map((item) => item.name).join(', ') || 'none'}</dd>
              <dt>Main character</dt>
              <dd>
                ${main.characterName ?? 'none'}${main.characterId === null ? '' : ` (${main.characterId})`}
              </dd>
              <dt>Affiliation</dt>
              <dd>${affiliation(profile) || '—'}</dd>
              ${keptPasswordFact(deps, profile)}
              <dt>Two-factor sign-in</dt>
              <dd>
                ${
                  twoFactor.enrolled
                    ? `on (${twoFactor.recoveryCodesLeft} recovery code(s) left)`
                    : twoFactor.pending
                      ? 'enrolment started, not confirmed'
                      : 'off'
                }
              </dd>
              ${
                record
                  ? html`<dt>Last sign-in</dt>
                      <dd>${formatTime(record.user.last_login_at)}</dd>
                      <dt>Created</dt>
                      <dd>${formatTime(record.user.created_at)}</dd>`
                  : ''
              }
            </dl>
            ${
              editable
                ? html`<h2>Actions</h2>
                    <p class="actions">
                      ${
                        !profile.active
                          ? html`<a class="button" href="${userPath(profile.id, '/activate')}">Activate…</a>`
                          : ownAccount
                            ? ''
                            : html`<a class="button danger" href="${userPath(profile.id, '/deactivate')}"
                                >Deactivate…</a
                              >`
                      }
                      <a class="button secondary" href="${userPath(profile.id, '/password')}"
                        >Set password…</a
                      >
                      <a
                        class="button secondary"
                        href="${userPath(profile.id, `/access?oidc_access=${profile.oidcAccess ? 'no' : 'yes'}`)}"
                        >${profile.oidcAccess ? 'Take direct OIDC access away…' : 'Grant OIDC access directly…'}</a
                      >
                      ${tokenActions} ${ownAccount ? '' : deleteLink}
                    </p>
                    ${
                      ownAccount
                        ? html`<p class="note">
                            This is the account you are signed in with: another superuser (or the CLI) can
                            deactivate or delete it, not you from here.
                          </p>`
                        : ''
                    }
                    <form method="get" action="${userPath(profile.id, '/state')}">
                      ${select(
                        'State',
                        'state',
                        [['', 'No state'], ...states.map((item) => [item.name, item.name] as const)],
                        profile.state?.name ?? '',
                      )}
                      <div class="actions">
                        <button type="submit" class="secondary">Change the state…</button>
                      </div>
                    </form>
                    ${
                      addable.length > 0
                        ? html`<form method="get" action="${userPath(profile.id, '/add-group')}">
                            ${select(
                              'Add to group',
                              'group',
                              addable.map((name) => [name, name] as const),
                              '',
                            )}
                            <div class="actions">
                              <button type="submit" class="secondary">Add to the group…</button>
                            </div>
                          </form>`
                        : html`<p class="note">
                            ${groups.length === 0 ? 'No group exists yet.' : 'A member of every group.'}
                          </p>`
                    }
                    ${
                      profile.groups.length > 0
                        ? html`<ul>
                            ${profile.groups.map(
                              (item) =>
                                html`<li>
                                  ${item.name}:
                                  <a
                                    href="${userPath(profile.id, `/remove-group?${new URLSearchParams({ group: item.name }).toString()}`)}"
                                    >Remove from the group…</a
                                  >
                                </li>`,
                            )}
                          </ul>`
                        : ''
                    }`
                : // A read-only directory (Alliance Auth): aa-oidc's own tokens and sessions are still ours.
                  html`<h2>Actions</h2>
                    <p class="actions">${tokenActions}</p>`
            }
            <h2>Applications</h2>
            <div class="table-wrap">
              <table>
                <caption>
                  Grants and live tokens per application
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Application</th>
                    <th scope="col">Scopes granted</th>
                    <th scope="col">Granted</th>
                    <th scope="col">Live tokens</th>
                  </tr>
                </thead>
                <tbody>
                  ${appIds.map((clientId) => {
                    const grant = grantOf.get(clientId);
                    return html`<tr>
                      <td class="name">${appName(apps, clientId)}</td>
                      <td>${grant ? grant.scopes.join(' ') : '—'}</td>
                      <td>${formatTime(grant?.grantedAt)}</td>
                      <td>${liveTokens.get(clientId) ?? 0}</td>
                    </tr>`;
                  })}
                </tbody>
              </table>
            </div>
            ${appIds.length === 0 ? html`<p class="note">No grant and no live token.</p>` : ''}
            <h2>Sessions</h2>
            ${
              sessions.length === 0
                ? html`<p class="note">No live session.</p>`
                : html`<div class="table-wrap">
                    <table>
                      <caption>
                        ${sessions.length} live browser session(s)
                      </caption>
                      <thead>
                        <tr>
                          <th scope="col">Signed in</th>
                          <th scope="col">With</th>
                          <th scope="col">Applications</th>
                          <th scope="col">Expires</th>
                        </tr>
                      </thead>
                      <tbody>
                        ${sessions.map(
                          (session) =>
                            html`<tr>
                              <td>${formatTime(session.loginAt)}</td>
                              <td>${session.amr.join(', ') || '—'}</td>
                              <td>
                                ${session.clientIds.length > 0 ? appList(apps, session.clientIds) : '—'}
                              </td>
                              <td>${formatTime(session.expiresAt)}</td>
                            </tr>`,
                        )}
                      </tbody>
                    </table>
                  </div>`
            }
            <h2>Recent sign-ins to applications</h2>
            ${
              signIns.length === 0
                ? searchedBack || html`<p class="note">None recorded.</p>`
                : html`<ul>
                      ${signIns.map(
                        (event) =>
                          html`<li>
                            ${formatTime(event.recordedAt)}: ${appName(apps, event.clientId ?? '')}
                          </li>`,
                      )}
                    </ul>
                    ${searchedBack}`
            }
            <p>
              <a href="/admin/audit?${new URLSearchParams({ user: profile.username }).toString()}"
                >Audit log of ${profile.username}</a
              >
            </p>`,
        );
      },
    },
  ];
}
