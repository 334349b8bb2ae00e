import { randomBytes } from 'node:crypto';
import type { Application } from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { csrfField, formAlert, textField } from '../console/ui.ts';
import type { Consequence } from '../db/unit-of-work.ts';
import { MAX_PASSWORD_LENGTH } from '../directory/builtin/passwords.ts';
import type { ChangeOptions, UserChange } from '../directory/builtin/types.ts';
import { quote } from '../directory/builtin/validation.ts';
import { DirectoryError, invalid } from '../directory/errors.ts';
import type { UserProfile } from '../directory/port.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { receivesLogout } from '../logout/fanout.ts';
import { countByClient, InvalidRevocationNoteError, MAX_NOTE_LENGTH } from '../tokens/revocation.ts';
import { selectUserSessions } from '../tokens/store.ts';
import { shownName } from '../util/visible-text.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';
import {
  applicationsById,
  impactList,
  loadProfile,
  readOnly,
  userNotFound,
  readOnlyRefusal,
  userPath,
  writableDirectory,
} from './directory-parts.ts';
import { carriedQuery } from './filter-parts.ts';

/**
 * The actions on one user, as the CLI's `user` and `tokens` commands do them. Each first shows what
 * it would do — the same dry run as `--dry-run`, with what the change's consumers report
 * (applications lost, back-channel logouts, revoked tokens, ended sessions) — and runs only once
 * confirmed (POST with the CSRF token). With the Alliance Auth directory the changes of the directory
 * are refused (users are managed there); revoking a user's tokens and signing them out everywhere
 * change only aa-oidc's own tokens, sessions and grants, and are offered with either directory.
 */

/** One action on a user: previewed by a dry run on GET, done on POST (with the CSRF token). */
interface UserAction {
  slug: string;
  /** Shown only when it applies to the user. */
  applies(profile: UserProfile): boolean;
  button: string;
  /**
   * The page's title and heading; a name `input` carries is shown bounded (`shownName`), and one it
   * lacks (given twice in the query, refused) is not named.
   */
  title(profile: UserProfile, input: URLSearchParams): string;
  /** Fields of the confirmation form (beyond the values carried over from the query). */
  fields?(profile: UserProfile, input: URLSearchParams, error?: string): Html;
  /** The names carried from the GET query into the confirmation form. */
  carry: readonly string[];
  /** Where the browser goes once it is done: the user's page, or the list (the user is gone). */
  then?: 'list';
  /**
   * Set when the action changes only aa-oidc's own tokens, sessions and grants, not the directory:
   * offered over a read-only directory (Alliance Auth) too. Every other action is refused there.
   */
  outsideDirectory?: true;
  /**
   * Set when the action would lock the superuser who does it out of the console (their sign-in
   * refused from the next request): refused on their own account, with what they can do instead.
   */
  ownAccount?: string;
  /** Runs the action (a dry run with `dryRun`); returns what it caused and whether it changed anything. */
  run(
    profile: UserProfile,
    input: URLSearchParams,
    options: { actor: string; dryRun: boolean },
    apps: ReadonlyMap<string, Application>,
  ): Promise<{ changed: boolean; consequences: Consequence[]; extra?: Html }>;
}

export function userActionRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const admin = () => writableDirectory(deps);

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
      ownAccount: 'deactivate',
      run: directoryChange((profile, _input, options) => admin().deactivate({ id: profile.id }, options)),
    },
    {
      slug: 'activate',
      applies: (profile) => !profile.active,
      title: (profile) => `Activate ${profile.username}?`,
      button: 'Activate',
      carry: [],
      run: directoryChange((profile, _input, options) => admin().activate({ id: profile.id }, options)),
    },
    {
      slug: 'state',
      applies: () => true,
      title: (profile, input) => {
        const state = input.get('state');
        if (state === null) return `Change ${profile.username}’s state?`;
        return state === ''
          ? `Remove ${profile.username}’s state?`
          : `Move ${profile.username} to state ${shownName(state)}?`;
      },
      button: 'Change the state',
      carry: ['state'],
      run: directoryChange((profile, input, options) =>
        admin().setState(
          { id: profile.id },
          (input.get('state') ?? '') === '' ? null : input.get('state'),
          options,
        ),
      ),
    },
    {
      slug: 'access',
      applies: () => true,
      title: (profile, input) =>
        input.get('oidc_access') === 'yes'
          ? `Grant ${profile.username} OIDC access directly?`
          : input.get('oidc_access') === 'no'
            ? `Take ${profile.username}’s direct OIDC access away?`
            : `Change ${profile.username}’s direct OIDC access?`,
      button: 'Change OIDC access',
      carry: ['oidc_access'],
      run: directoryChange((profile, input, options) => {
        const value = input.get('oidc_access') ?? '';
        // Anything but yes must not be taken for no: that would take the access away.
        if (value !== 'yes' && value !== 'no')
          throw invalid(`oidc_access= takes yes or no, not ${quote(value)}`);
        return admin().updateUser({ id: profile.id }, { oidcAccess: value === 'yes' }, options);
      }),
    },
    {
      slug: 'add-group',
      applies: () => true,
      title: (profile, input) => `Add ${profile.username} to ${groupNamed(input)}?`,
      button: 'Add to the group',
      carry: ['group'],
      run: directoryChange((profile, input, options) =>
        admin().addGroup({ id: profile.id }, input.get('group') ?? '', options),
      ),
    },
    {
      slug: 'remove-group',
      applies: (profile) => profile.groups.length > 0,
      title: (profile, input) => `Remove ${profile.username} from ${groupNamed(input)}?`,
      button: 'Remove from the group',
      carry: ['group'],
      run: directoryChange((profile, input, options) =>
        admin().removeGroup({ id: profile.id }, input.get('group') ?? '', options),
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
          maxlength: MAX_PASSWORD_LENGTH,
          hint: 'At least 8 characters. Tell the user through a channel you trust.',
          ...(error ? { error, autofocus: true } : {}),
        }),
      // The preview runs with a throwaway password: what a new password causes does not depend on it.
      run: directoryChange((profile, input, options) =>
        admin().setPassword(
          { id: profile.id },
          options.dryRun ? randomBytes(16).toString('base64url') : (input.get('password') ?? ''),
          options,
        ),
      ),
    },
    {
      slug: 'revoke-tokens',
      applies: () => true,
      outsideDirectory: true,
      title: (profile) => `Revoke every code and token of ${profile.username}?`,
      button: 'Revoke',
      carry: [],
      fields: (_profile, input, error) =>
        textField('Reason', 'reason', input.get('reason') ?? '', {
          required: true,
          maxlength: MAX_NOTE_LENGTH,
          hint: 'Recorded with each token_revoked audit event.',
          ...(error ? { error, autofocus: true } : {}),
        }),
      async run(profile, input, options, apps) {
        const note = (input.get('reason') ?? '').trim();
        const result = await deps.tokens.revokeUser(profile.username, {
          reason: 'user_revoked',
          dryRun: options.dryRun,
          actor: options.actor,
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
    outsideDirectory: true,
    title: (profile) => `Sign ${profile.username} out everywhere?`,
    button: 'Sign out everywhere',
    carry: [],
    async run(profile, _input, options, apps) {
      // The applications signed in through a session hear of it too, as the service's hook tells them.
      const sessions = options.dryRun ? await selectUserSessions(deps.db, profile.id) : [];
      const result = await deps.tokens.signOutUser(profile.username, {
        dryRun: options.dryRun,
        actor: options.actor,
      });
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

  actions.push({
    slug: 'reset-two-factor',
    applies: () => true,
    outsideDirectory: true,
    title: (profile) => `Reset ${profile.username}’s two-factor sign-in?`,
    button: 'Reset two-factor sign-in',
    carry: [],
    async run(profile, _input, options) {
      const user = { id: profile.id, username: profile.username };
      return {
        changed: await deps.twoFactor.reset(user, options),
        consequences: [],
        extra: html`<p>
          ${profile.username}’s authenticator and recovery codes stop working. Their next sign-in asks for the
          password alone, unless two-factor sign-in is required of them (superusers, when configured): then it
          asks them to enrol again. They can enrol again on their account page.
        </p>`,
      };
    },
  });

  actions.push({
    slug: 'delete',
    applies: () => true,
    title: (profile) => `Delete ${profile.username}?`,
    button: 'Delete the user',
    carry: [],
    then: 'list',
    ownAccount: 'delete',
    run: directoryChange((profile, _input, options) => admin().deleteUser({ id: profile.id }, options)),
  });

  const actionPage = async (
    request: ConsoleRequest,
    action: UserAction,
    profile: UserProfile,
    input: URLSearchParams,
    problem?: { message: string; field?: string; status: number; unpreviewable?: true },
  ) => {
    if (readOnly(deps) && !action.outsideDirectory)
      return readOnlyRefusal(request, deps, '/admin/users', {
        href: userPath(profile.id),
        text: `Back to ${profile.username}`,
      });
    // A query that says no one change (a value given twice): nothing to preview, nor to confirm.
    if (problem?.unpreviewable)
      return renderAdmin(
        request,
        '/admin/users',
        action.title(profile, input),
        html`<h1>${action.title(profile, input)}</h1>
          ${formAlert(`Not possible: ${problem.message}`)}
          <p><a href="${userPath(profile.id)}">Back to ${profile.username}</a></p>`,
        { status: problem.status },
      );
    const apps = await applicationsById(deps);
    let preview: Html;
    // A change refused by its dry run is offered no confirmation, unless it has a field to correct.
    let confirmable = true;
    let refusal: string | undefined;
    try {
      const dryRun = await action.run(profile, input, { actor: adminActor(request), dryRun: true }, apps);
      preview = dryRun.changed
        ? html`<div class="warn">
            <p><strong>What happens:</strong></p>
            ${impactList(dryRun.consequences, apps, profile.username)} ${dryRun.extra ?? ''}
          </div>`
        : html`<p class="note">Nothing would change.</p>`;
    } catch (error) {
      if (!(error instanceof DirectoryError || error instanceof InvalidRevocationNoteError)) throw error;
      confirmable = action.fields !== undefined;
      refusal = webMessage(error);
      preview = html``;
    }
    // A refusal at a field focuses that field; any other, its alert (the first shown).
    const fieldFocused = problem?.field !== undefined && confirmable && action.fields !== undefined;
    const problemShown = problem !== undefined && !problem.field && problem.message !== refusal;
    if (refusal !== undefined)
      preview = formAlert(`${confirmable ? '' : 'Not possible: '}${refusal}`, {
        focus: !fieldFocused && !problemShown,
      });
    renderAdmin(
      request,
      '/admin/users',
      action.title(profile, input),
      html`<h1>${action.title(profile, input)}</h1>
        ${problemShown ? formAlert(problem.message, { focus: !fieldFocused }) : ''} ${preview}
        ${
          confirmable
            ? html`<form method="post" action="${userPath(profile.id, `/${action.slug}`)}">
                ${csrfField(request.session)}
                ${action.carry.map((name) => html`<input type="hidden" name="${name}" value="${input.get(name) ?? ''}" />`)}
                ${action.fields ? action.fields(profile, input, problem?.field ? problem.message : undefined) : ''}
                <div class="actions">
                  <button type="submit" class="danger">${action.button}</button>
                  <a href="${userPath(profile.id)}">Cancel</a>
                </div>
              </form>`
            : html`<p><a href="${userPath(profile.id)}">Back to ${profile.username}</a></p>`
        }`,
      { status: problem?.status ?? (confirmable ? 200 : 409) },
    );
  };

  /**
   * True (and the refusal rendered) when `action` would lock the signed-in superuser out: nothing is
   * changed, and the page says who can do it instead, so that a console is never left without the
   * superuser who was using it by a slip of theirs.
   */
  const refusedOnOwnAccount = (
    request: ConsoleRequest,
    action: UserAction,
    profile: UserProfile,
  ): boolean => {
    if (!action.ownAccount || request.visitor?.id !== profile.id) return false;
    renderAdmin(
      request,
      '/admin/users',
      'Your own account',
      html`<h1>Your own account</h1>
        ${formAlert(
          html`Nothing was changed: you cannot ${action.ownAccount} the account you are signed in with here,
            as it would lock you out of this console. Another superuser can, or
            <code>aa-oidc user ${action.ownAccount} ${profile.username}</code> on the server.`,
        )}
        <p><a href="${userPath(profile.id)}">Back to ${profile.username}</a></p>`,
      { status: 409 },
    );
    return true;
  };

  const actionRoutes = actions.flatMap((action): ConsoleRoute[] => [
    {
      method: 'GET',
      path: `/admin/users/:id/${action.slug}`,
      access: 'superuser',
      async handle(request) {
        const profile = await loadProfile(deps, request);
        if (!profile) return userNotFound(request);
        const { input, error } = carriedQuery(request.ctx.query, action.carry);
        if (refusedOnOwnAccount(request, action, profile)) return;
        await actionPage(
          request,
          action,
          profile,
          input,
          error === undefined ? undefined : { message: error, status: 400, unpreviewable: true },
        );
      },
    },
    {
      method: 'POST',
      path: `/admin/users/:id/${action.slug}`,
      access: 'superuser',
      async handle(request) {
        const profile = await loadProfile(deps, request);
        if (!profile) return userNotFound(request);
        if (readOnly(deps) && !action.outsideDirectory)
          return actionPage(request, action, profile, request.form);
        if (refusedOnOwnAccount(request, action, profile)) return;
        try {
          const apps = await applicationsById(deps);
          const result = await action.run(
            profile,
            request.form,
            { actor: adminActor(request), dryRun: false },
            apps,
          );
          const done = result.changed ? action.slug : 'unchanged';
          request.seeOther(
            action.then === 'list' ? `/admin/users?done=${done}` : `${userPath(profile.id)}?done=${done}`,
          );
        } catch (error) {
          if (error instanceof InvalidRevocationNoteError)
            return actionPage(request, action, profile, request.form, {
              message: webMessage(error),
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

  return actionRoutes;
}

/** `group NAME` for the group `input` carries (bounded: `shownName`), or `a group` when it carries none. */
function groupNamed(input: URLSearchParams): string {
  const group = input.get('group');
  return group === null ? 'a group' : `group ${shownName(group)}`;
}

/** An error as the page says it: the revocation's note is "The reason" here, not the CLI's `--reason`. */
function webMessage(error: DirectoryError | InvalidRevocationNoteError): string {
  return error instanceof InvalidRevocationNoteError
    ? error.message.replace('--reason', 'The reason')
    : error.message;
}
