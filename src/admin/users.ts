import { randomBytes } from 'node:crypto';
import type { Application } from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { csrfField, doneMessage, formatTime, queryText, select, textField } from '../console/ui.ts';
import { type Consequence, summarizeConsequences } from '../db/unit-of-work.ts';
import type { ChangeOptions, UserChange } from '../directory/builtin/types.ts';
import { DirectoryError } from '../directory/errors.ts';
import type { UserProfile } from '../directory/port.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { receivesLogout } from '../logout/fanout.ts';
import { listTokens } from '../tokens/listing.ts';
import { countByClient, InvalidRevocationNoteError, MAX_NOTE_LENGTH } from '../tokens/revocation.ts';
import { selectUserGrants, selectUserSessions } from '../tokens/store.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';

/**
 * Users in the admin UI: search, the detail of one user (state, groups, main character, sessions,
 * grants and live tokens per application, recent sign-ins), and the actions of the CLI's `user` and
 * `tokens` commands. Each action first shows what it would do — the same dry run as `--dry-run`,
 * with what the change's consumers report (applications lost, back-channel logouts, revoked tokens,
 * ended sessions) — and runs only once confirmed. With the Alliance Auth directory the pages are
 * read-only: users are managed there.
 */

const PAGE = 50;

const DONE: Readonly<Record<string, string>> = {
  deactivate: 'Deactivated: every application refuses the user from the next request.',
  activate: 'Activated.',
  state: 'State changed.',
  'add-group': 'Added to the group.',
  'remove-group': 'Removed from the group.',
  password: 'Password set.',
  'revoke-tokens': 'Codes and tokens revoked; the applications were told.',
  'sign-out': 'Signed out everywhere.',
  unchanged: 'Nothing changed.',
};

function userPath(id: number, suffix = ''): string {
  return `/admin/users/${id}${suffix}`;
}

export function readOnly(deps: AdminDependencies): boolean {
  return deps.config.directory.source !== 'builtin';
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

function affiliation(profile: UserProfile): string {
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

function appName(apps: ReadonlyMap<string, Application>, clientId: string): Html {
  const app = apps.get(clientId);
  return html`<a href="/admin/apps/${encodeURIComponent(clientId)}">${app?.name ?? clientId}</a>`;
}

function appList(apps: ReadonlyMap<string, Application>, clientIds: readonly string[]): Html {
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

/** One action on a user: previewed by a dry run on GET, done on POST (with the CSRF token). */
interface UserAction {
  slug: string;
  /** Shown only when it applies to the user. */
  applies(profile: UserProfile): boolean;
  title(profile: UserProfile, input: URLSearchParams): string;
  button: string;
  /** Fields of the confirmation form (beyond the values carried over from the query). */
  fields?(profile: UserProfile, input: URLSearchParams, error?: string): Html;
  /** The names carried from the GET query into the confirmation form. */
  carry: readonly string[];
  /** Runs the action (a dry run with `dryRun`); returns what it caused and whether it changed anything. */
  run(
    profile: UserProfile,
    input: URLSearchParams,
    options: { actor: string; dryRun: boolean },
    apps: ReadonlyMap<string, Application>,
  ): Promise<{ changed: boolean; consequences: Consequence[]; extra?: Html }>;
}

export function userRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const admin = deps.directoryAdmin;

  const directoryChange =
    (change: (profile: UserProfile, input: URLSearchParams, options: ChangeOptions) => Promise<UserChange>) =>
    async (profile: UserProfile, input: URLSearchParams, options: { actor: string; dryRun: boolean }) => {
      const consequences: Consequence[] = [];
      const result = await change(profile, input, { ...options, consequences });
      return { changed: result.changed, consequences };
    };

  const actions: UserAction[] = [
    {
      slug: 'deactivate',
      applies: (profile) => profile.active,
      title: (profile) => `Deactivate ${profile.username}?`,
      button: 'Deactivate',
      carry: [],
      run: directoryChange((profile, _input, options) => admin.deactivate({ id: profile.id }, options)),
    },
    {
      slug: 'activate',
      applies: (profile) => !profile.active,
      title: (profile) => `Activate ${profile.username}?`,
      button: 'Activate',
      carry: [],
      run: directoryChange((profile, _input, options) => admin.activate({ id: profile.id }, options)),
    },
    {
      slug: 'state',
      applies: () => true,
      title: (profile, input) => {
        const state = input.get('state') ?? '';
        return state === ''
          ? `Remove ${profile.username}’s state?`
          : `Move ${profile.username} to state ${state}?`;
      },
      button: 'Change the state',
      carry: ['state'],
      run: directoryChange((profile, input, options) =>
        admin.setState(
          { id: profile.id },
          (input.get('state') ?? '') === '' ? null : input.get('state'),
          options,
        ),
      ),
    },
    {
      slug: 'add-group',
      applies: () => true,
      title: (profile, input) => `Add ${profile.username} to group ${input.get('group') ?? ''}?`,
      button: 'Add to the group',
      carry: ['group'],
      run: directoryChange((profile, input, options) =>
        admin.addGroup({ id: profile.id }, input.get('group') ?? '', options),
      ),
    },
    {
      slug: 'remove-group',
      applies: (profile) => profile.groups.length > 0,
      title: (profile, input) => `Remove ${profile.username} from group ${input.get('group') ?? ''}?`,
      button: 'Remove from the group',
      carry: ['group'],
      run: directoryChange((profile, input, options) =>
        admin.removeGroup({ id: profile.id }, input.get('group') ?? '', options),
      ),
    },
    {
      slug: 'password',
      applies: () => true,
      title: (profile) => `Set ${profile.username}’s password`,
      button: 'Set the password',
      carry: [],
      fields: (_profile, _input, error) =>
        textField('New password', 'password', '', {
          type: 'password',
          autocomplete: 'new-password',
          required: true,
          hint: 'At least 8 characters. Tell the user through a channel you trust.',
          ...(error ? { error } : {}),
        }),
      // The preview runs with a throwaway password: what a new password causes does not depend on it.
      run: directoryChange((profile, input, options) =>
        admin.setPassword(
          { id: profile.id },
          options.dryRun ? randomBytes(16).toString('base64url') : (input.get('password') ?? ''),
          options,
        ),
      ),
    },
    {
      slug: 'revoke-tokens',
      applies: () => true,
      title: (profile) => `Revoke every code and token of ${profile.username}?`,
      button: 'Revoke',
      carry: [],
      fields: (_profile, input, error) =>
        textField('Reason', 'reason', input.get('reason') ?? '', {
          required: true,
          maxlength: MAX_NOTE_LENGTH,
          hint: 'Recorded with each token_revoked audit event.',
          ...(error ? { error } : {}),
        }),
      async run(profile, input, options, apps) {
        const note = (input.get('reason') ?? '').trim();
        const result = await deps.tokens.revokeUser(profile.username, {
          reason: 'user_revoked',
          dryRun: options.dryRun,
          // A preview before a reason was typed still shows what would be revoked.
          ...(options.dryRun && note === '' ? {} : { note }),
        });
        // The same rule as the revocation's back-channel hook: the applications whose tokens it revoked.
        const consequences: Consequence[] = [];
        for (const [clientId, count] of countByClient(result.revoked)) {
          consequences.push({ kind: 'tokens_revoked', userId: profile.id, clientId, count });
          const app = clientId === null ? undefined : apps.get(clientId);
          if (app && receivesLogout(app, 'user_revoked'))
            consequences.push({
              kind: 'logout_queued',
              userId: profile.id,
              clientId: app.clientId,
              reason: 'user_revoked',
            });
        }
        return { changed: result.revoked.length > 0, consequences };
      },
    },
  ];

  actions.push({
    slug: 'sign-out',
    applies: () => true,
    title: (profile) => `Sign ${profile.username} out everywhere?`,
    button: 'Sign out everywhere',
    carry: [],
    async run(profile, _input, options, apps) {
      // The applications signed in through a session hear of it too, as the service's hook tells them.
      const sessions = options.dryRun ? await selectUserSessions(deps.db, profile.id) : [];
      const result = await deps.tokens.signOutUser(profile.username, { dryRun: options.dryRun });
      const consequences: Consequence[] = [];
      const held = new Set(sessions.flatMap((session) => session.clientIds));
      for (const [clientId, count] of countByClient(result.revoked)) {
        consequences.push({ kind: 'tokens_revoked', userId: profile.id, clientId, count });
        if (clientId !== null) held.add(clientId);
      }
      for (const clientId of [...held].sort()) {
        const app = apps.get(clientId);
        if (app && receivesLogout(app, 'user_revoked'))
          consequences.push({ kind: 'logout_queued', userId: profile.id, clientId, reason: 'user_revoked' });
      }
      if (result.sessionsEnded > 0)
        consequences.push({ kind: 'sessions_ended', userId: profile.id, count: result.sessionsEnded });
      return {
        changed: result.revoked.length > 0 || result.sessionsEnded > 0 || result.grantsRemoved > 0,
        consequences,
      };
    },
  });

  const loadProfile = async (request: ConsoleRequest): Promise<UserProfile | undefined> => {
    const raw = request.params.id ?? '';
    if (!/^\d{1,15}$/.test(raw)) return undefined;
    return deps.directory.profileById(Number(raw));
  };

  const notFound = (request: ConsoleRequest) =>
    renderAdmin(
      request,
      '/admin/users',
      'No such user',
      html`<h1>No such user</h1>
        <p class="alert" role="alert">No user has this id.</p>
        <p><a href="/admin/users">Users</a></p>`,
      { status: 404 },
    );

  const actionPage = async (
    request: ConsoleRequest,
    action: UserAction,
    profile: UserProfile,
    input: URLSearchParams,
    problem?: { message: string; field?: string; status: number },
  ) => {
    if (readOnly(deps)) {
      renderAdmin(
        request,
        '/admin/users',
        'Read-only',
        html`<h1>Read-only</h1>
          ${allianceAuthNote(deps)}
          <p><a href="${userPath(profile.id)}">Back to ${profile.username}</a></p>`,
        { status: 409 },
      );
      return;
    }
    const apps = await applicationsById(deps);
    let preview: Html;
    try {
      const dryRun = await action.run(profile, input, { actor: adminActor(request), dryRun: true }, apps);
      preview = dryRun.changed
        ? html`<div class="warn">
            <p><strong>What happens:</strong></p>
            ${impactList(dryRun.consequences, apps, profile.username)}
          </div>`
        : html`<p class="note">Nothing would change.</p>`;
    } catch (error) {
      if (!(error instanceof DirectoryError || error instanceof InvalidRevocationNoteError)) throw error;
      preview = html`<p class="alert" role="alert">${error.message}</p>`;
    }
    renderAdmin(
      request,
      '/admin/users',
      action.title(profile, input),
      html`<h1>${action.title(profile, input)}</h1>
        ${problem && !problem.field ? html`<p class="alert" role="alert">${problem.message}</p>` : ''}
        ${preview}
        <form method="post" action="${userPath(profile.id, `/${action.slug}`)}">
          ${csrfField(request.session)}
          ${action.carry.map((name) => html`<input type="hidden" name="${name}" value="${input.get(name) ?? ''}" />`)}
          ${action.fields ? action.fields(profile, input, problem?.field ? problem.message : undefined) : ''}
          <div class="actions">
            <button type="submit" class="danger">${action.button}</button>
            <a href="${userPath(profile.id)}">Cancel</a>
          </div>
        </form>`,
      { status: problem?.status ?? 200 },
    );
  };

  const actionRoutes = actions.flatMap((action): ConsoleRoute[] => [
    {
      method: 'GET',
      path: `/admin/users/:id/${action.slug}`,
      access: 'superuser',
      async handle(request) {
        const profile = await loadProfile(request);
        if (!profile) return notFound(request);
        const input = new URLSearchParams();
        for (const name of action.carry) input.set(name, queryText(request.ctx.query, name, 300));
        await actionPage(request, action, profile, input);
      },
    },
    {
      method: 'POST',
      path: `/admin/users/:id/${action.slug}`,
      access: 'superuser',
      async handle(request) {
        const profile = await loadProfile(request);
        if (!profile) return notFound(request);
        if (readOnly(deps)) return actionPage(request, action, profile, request.form);
        try {
          const apps = await applicationsById(deps);
          const result = await action.run(
            profile,
            request.form,
            { actor: adminActor(request), dryRun: false },
            apps,
          );
          request.seeOther(`${userPath(profile.id)}?done=${result.changed ? action.slug : 'unchanged'}`);
        } catch (error) {
          if (error instanceof InvalidRevocationNoteError)
            return actionPage(request, action, profile, request.form, {
              message: error.message.replace('--reason', 'The reason'),
              field: 'reason',
              status: 400,
            });
          if (error instanceof DirectoryError)
            return actionPage(request, action, profile, request.form, {
              message: error.message,
              ...(action.slug === 'password' ? { field: 'password' } : {}),
              status: error.code === 'not_found' ? 404 : error.code === 'conflict' ? 409 : 400,
            });
          throw error;
        }
      },
    },
  ]);

  return [
    {
      method: 'GET',
      path: '/admin/users',
      access: 'superuser',
      async handle(request) {
        const raw = request.ctx.query;
        const q = queryText(raw, 'q', 150);
        const state = queryText(raw, 'state', 150);
        const group = queryText(raw, 'group', 150);
        const active = queryText(raw, 'active', 3);
        const pageNumber = Math.max(1, Math.min(10_000, Number.parseInt(queryText(raw, 'page', 6), 10) || 1));
        const [states, groups, users] = await Promise.all([
          deps.directory.listStates(),
          deps.directory.listGroups(),
          deps.directory.listProfiles({
            ...(q === '' ? {} : { search: q }),
            ...(state === '' ? {} : { state: state === '-' ? null : state }),
            ...(group === '' ? {} : { group }),
            ...(active === 'yes' ? { active: true } : active === 'no' ? { active: false } : {}),
            limit: PAGE + 1,
            offset: (pageNumber - 1) * PAGE,
          }),
        ]);
        const shown = users.slice(0, PAGE);
        const query = { q, state, group, active };
        const pageLink = (page: number) =>
          `/admin/users?${new URLSearchParams({ ...query, page: String(page) }).toString()}`;
        renderAdmin(
          request,
          '/admin/users',
          'Users',
          html`<h1>Users</h1>
            ${readOnly(deps) ? allianceAuthNote(deps) : ''}
            <form method="get" action="/admin/users" class="filters" role="search">
              ${textField('Username or email', 'q', q, { type: 'search' })}
              ${select(
                'State',
                'state',
                [['', 'Any'], ['-', 'No state'], ...states.map((item) => [item.name, item.name] as const)],
                state,
              )}
              ${select('Group', 'group', [['', 'Any'], ...groups.map((item) => [item.name, item.name] as const)], group)}
              ${select(
                'Active',
                'active',
                [
                  ['', 'Any'],
                  ['yes', 'Active'],
                  ['no', 'Inactive'],
                ],
                active,
              )}
              <div class="actions"><button type="submit">Search</button></div>
            </form>
            <div class="table-wrap">
              <table>
                <caption>
                  ${shown.length === 0 ? 'No user matches.' : `Users ${(pageNumber - 1) * PAGE + 1}–${(pageNumber - 1) * PAGE + shown.length}`}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Username</th>
                    <th scope="col">Main character</th>
                    <th scope="col">State</th>
                    <th scope="col">Groups</th>
                    <th scope="col">Active</th>
                  </tr>
                </thead>
                <tbody>
                  ${shown.map(
                    (user) =>
                      html`<tr>
                        <td>
                          <a href="${userPath(user.id)}">${user.username}</a
                          >${user.superuser ? html` <span class="note">(superuser)</span>` : ''}
                        </td>
                        <td>${user.mainCharacter.characterName ?? '—'}</td>
                        <td>${user.state?.name ?? '—'}</td>
                        <td>${user.groups.map((item) => item.name).join(', ') || '—'}</td>
                        <td>${user.active ? 'yes' : 'no'}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>
            </div>
            <nav class="pager" aria-label="Pages">
              ${pageNumber > 1 ? html`<a href="${pageLink(pageNumber - 1)}">Previous page</a> ` : ''}
              ${users.length > PAGE ? html`<a href="${pageLink(pageNumber + 1)}">Next page</a>` : ''}
            </nav>`,
        );
      },
    },
    {
      method: 'GET',
      path: '/admin/users/:id',
      access: 'superuser',
      async handle(request) {
        const profile = await loadProfile(request);
        if (!profile) return notFound(request);
        const now = Date.now();
        const [record, apps, states, groups, grants, sessions, tokens, issued] = await Promise.all([
          readOnly(deps) ? Promise.resolve(undefined) : admin.loadUserProfile(profile.id),
          applicationsById(deps),
          deps.directory.listStates(),
          deps.directory.listGroups(),
          selectUserGrants(deps.db, profile.id, now),
          selectUserSessions(deps.db, profile.id, now),
          listTokens(deps.db, { userId: profile.id }),
          deps.auditStore.list({ userId: profile.id, kinds: ['token_issued'], limit: 200 }),
        ]);
        const liveTokens = new Map<string, number>();
        for (const token of tokens)
          if (token.status === 'active' && token.clientId !== null)
            liveTokens.set(token.clientId, (liveTokens.get(token.clientId) ?? 0) + 1);
        const appIds = [...new Set([...grants.map((grant) => grant.clientId), ...liveTokens.keys()])].sort();
        const grantOf = new Map(grants.map((grant) => [grant.clientId, grant]));
        const signIns = issued
          .filter(
            (event) =>
              event.record.grant_type === 'authorization_code' && event.record.token_type === 'access_token',
          )
          .slice(0, 10);
        const editable = !readOnly(deps);
        const groupNames = new Set(profile.groups.map((item) => item.name));
        const main = profile.mainCharacter;
        renderAdmin(
          request,
          '/admin/users',
          profile.username,
          html`<h1>${profile.username}</h1>
            ${doneMessage(DONE, request.ctx.query.done)} ${readOnly(deps) ? allianceAuthNote(deps) : ''}
            <dl class="facts">
              <dt>User id</dt>
              <dd>${profile.id}</dd>
              <dt>Email</dt>
              <dd>${profile.email || '—'}</dd>
              <dt>Active</dt>
              <dd>${profile.active ? 'yes' : 'no: every application refuses this user'}</dd>
              <dt>Superuser</dt>
              <dd>${profile.superuser ? 'yes' : 'no'}</dd>
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
                        profile.active
                          ? html`<a class="button danger" href="${userPath(profile.id, '/deactivate')}"
                              >Deactivate…</a
                            >`
                          : html`<a class="button" href="${userPath(profile.id, '/activate')}">Activate…</a>`
                      }
                      <a class="button secondary" href="${userPath(profile.id, '/password')}"
                        >Set password…</a
                      >
                      <a class="button secondary" href="${userPath(profile.id, '/sign-out')}"
                        >Sign out everywhere…</a
                      >
                      <a class="button secondary" href="${userPath(profile.id, '/revoke-tokens')}"
                        >Revoke tokens…</a
                      >
                    </p>
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
                    <form method="get" action="${userPath(profile.id, '/add-group')}">
                      ${select(
                        'Add to group',
                        'group',
                        groups
                          .filter((item) => !groupNames.has(item.name))
                          .map((item) => [item.name, item.name] as const),
                        '',
                      )}
                      <div class="actions">
                        <button type="submit" class="secondary">Add to the group…</button>
                      </div>
                    </form>
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
                : ''
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
                      <td>${appName(apps, clientId)}</td>
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
                ? html`<p class="note">None recorded.</p>`
                : html`<ul>
                    ${signIns.map(
                      (event) =>
                        html`<li>
                          ${formatTime(event.recordedAt)}: ${appName(apps, event.clientId ?? '')}
                        </li>`,
                    )}
                  </ul>`
            }
            <p>
              <a href="/admin/audit?${new URLSearchParams({ user: profile.username }).toString()}"
                >Audit log of ${profile.username}</a
              >
            </p>`,
        );
      },
    },
    ...actionRoutes,
  ];
}
