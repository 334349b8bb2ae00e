import type { ConsoleRoute } from '../console/http.ts';
import { doneMessage, formAlert, select, textField } from '../console/ui.ts';
import { NAME_FIELD_MAXLENGTH } from '../directory/builtin/validation.ts';
import { html } from '../http/pages/layout.ts';
import { type AdminDependencies, renderAdmin } from './context.ts';
import { allianceAuthNote, readOnly, userPath } from './directory-parts.ts';
import { fieldError, queryChoice, queryFilter, queryPage, unknownName } from './filter-parts.ts';
import { userActionRoutes } from './user-actions.ts';
import { USER_DONE, userDetailRoutes } from './user-detail.ts';

export { allianceAuthNote, applicationsById, impactList, readOnly } from './directory-parts.ts';

/**
 * Users in the admin UI: the search, then one user's page (`user-detail.ts`) and the actions on a
 * user (`user-actions.ts`). With the Alliance Auth directory the pages are read-only: users are
 * managed there.
 */

const PAGE = 50;

/**
 * The state filter's "No state": a value no state is named (`.` is refused as a name), so that a state
 * named `-` or `none` is filtered as itself.
 */
const NO_STATE = '.';

/** The longest search text (`?q=`), in UTF-16 units as the field's `maxlength` counts: a username's length. */
const SEARCH_MAX = 150;
/** The longest state or group filter: a name's 150 characters (as the form's fields take them). */
const NAME_FILTER_MAX = NAME_FIELD_MAXLENGTH;

export function userRoutes(deps: AdminDependencies): ConsoleRoute[] {
  return [
    {
      method: 'GET',
      path: '/admin/users',
      access: 'superuser',
      async handle(request) {
        const raw = request.ctx.query;
        const { value: q, error: qError } = queryFilter(raw, 'q', SEARCH_MAX);
        const { value: givenState, error: stateFilterError } = queryFilter(raw, 'state', NAME_FILTER_MAX, {
          asGiven: true,
        });
        const { value: givenGroup, error: groupFilterError } = queryFilter(raw, 'group', NAME_FILTER_MAX, {
          asGiven: true,
        });
        // Refused at its field, listing nobody: a mistyped filter must not list everyone as if it were "Any".
        const { value: active, error: activeError } = queryChoice(raw, 'active', ['yes', 'no'], 'status');
        const [states, groups] = await Promise.all([
          deps.directory.listStates(),
          deps.directory.listGroups(),
        ]);
        // A name the directory has none of (an old bookmark, a state renamed since) is said at its field,
        // not listed as nobody under "Any"; one it matches is shown as the directory spells it.
        const named = (
          noun: 'state' | 'group',
          given: string,
          listed: readonly { name: string }[],
        ): { value: string; error?: string } => {
          if (given === '' || (noun === 'state' && given === NO_STATE)) return { value: given };
          const name = deps.directory.nameAmong(
            listed.map((item) => item.name),
            given,
          );
          return name === undefined ? { value: given, error: unknownName(noun, given) } : { value: name };
        };
        const { value: state, error: stateError } = stateFilterError
          ? { value: givenState, error: stateFilterError }
          : named('state', givenState, states);
        const { value: group, error: groupError } = groupFilterError
          ? { value: givenGroup, error: groupFilterError }
          : named('group', givenGroup, groups);
        // The first filter at fault, in the form's order, takes the focus.
        const focused = (
          [
            ['q', qError],
            ['state', stateError],
            ['group', groupError],
            ['active', activeError],
          ] as const
        ).find(([, error]) => error !== undefined)?.[0];
        const { page: pageNumber, error: pageError } = queryPage(raw, 10_000);
        const refused = focused !== undefined || pageError !== undefined;
        const users = refused
          ? []
          : await deps.directory.listProfiles({
              ...(q === '' ? {} : { search: q }),
              ...(state === '' ? {} : { state: state === NO_STATE ? null : state }),
              ...(group === '' ? {} : { group }),
              ...(active === '' ? {} : { active: active === 'yes' }),
              limit: PAGE + 1,
              offset: (pageNumber - 1) * PAGE,
            });
        const shown = users.slice(0, PAGE);
        const query = { q, state, group, active };
        const pageLink = (page: number) =>
          `/admin/users?${new URLSearchParams({ ...query, page: String(page) }).toString()}`;
        renderAdmin(
          request,
          '/admin/users',
          'Users',
          html`<h1>Users</h1>
            ${doneMessage(USER_DONE, request.ctx.query.done)} ${readOnly(deps) ? allianceAuthNote(deps) : ''}
            ${pageError === undefined ? '' : formAlert(pageError, { focus: focused === undefined })}
            <form method="get" action="/admin/users" class="filters" role="search">
              <div>
                ${textField('Username or email', 'q', q, { type: 'search', maxlength: SEARCH_MAX, ...fieldError('q', qError, focused) })}
              </div>
              <div>
                ${select(
                  'State',
                  'state',
                  [
                    ['', 'Any'],
                    [NO_STATE, 'No state'],
                    ...states.map((item) => [item.name, item.name] as const),
                  ],
                  state,
                  fieldError('state', stateError, focused),
                )}
              </div>
              <div>
                ${select('Group', 'group', [['', 'Any'], ...groups.map((item) => [item.name, item.name] as const)], group, fieldError('group', groupError, focused))}
              </div>
              <div>
                ${select(
                  'Active',
                  'active',
                  [
                    ['', 'Any'],
                    ['yes', 'Active'],
                    ['no', 'Inactive'],
                  ],
                  active,
                  fieldError('active', activeError, focused),
                )}
              </div>
              <div><button type="submit">Search</button></div>
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
                    <th scope="col">OIDC access held directly</th>
                  </tr>
                </thead>
                <tbody>
                  ${shown.map(
                    (user) =>
                      html`<tr>
                        <td class="name">
                          <a href="${userPath(user.id)}">${user.username}</a
                          >${user.superuser ? html` <span class="note">(superuser)</span>` : ''}
                        </td>
                        <td>${user.mainCharacter.characterName ?? '—'}</td>
                        <td>${user.state?.name ?? '—'}</td>
                        <td>${user.groups.map((item) => item.name).join(', ') || '—'}</td>
                        <td>${user.active ? 'yes' : 'no'}</td>
                        <td>${user.oidcAccess ? 'yes' : 'no'}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>
            </div>
            <nav class="pager" aria-label="Pages">
              ${pageNumber > 1 && !refused ? html`<a href="${pageLink(pageNumber - 1)}">Previous page</a> ` : ''}
              ${users.length > PAGE ? html`<a href="${pageLink(pageNumber + 1)}">Next page</a>` : ''}
            </nav>`,
          { status: refused ? 400 : 200 },
        );
      },
    },
    ...userDetailRoutes(deps),
    ...userActionRoutes(deps),
  ];
}
