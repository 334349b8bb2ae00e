import { ACCESS_TOKEN_FORMAT_SETTINGS } from '../applications/types.ts';
import type { ConsoleRoute } from '../console/http.ts';
import { csrfField, formAlert, select, textField } from '../console/ui.ts';
import { html } from '../http/pages/layout.ts';
import { RETRY_AFTER_SECONDS } from '../http/unavailable.ts';
import { type BclTestResult, LogoutServiceClosedError } from '../logout/service.ts';
import { type AdminDependencies, renderAdmin } from './context.ts';
import { applicationLoader, appPath, FORMAT_LABELS, testResults } from './application-parts.ts';
import { fieldError, queryChoice, queryFilter } from './filter-parts.ts';
import { createRoutes, editRoutes } from './application-edit.ts';
import { lifecycleRoutes, showRoute } from './application-lifecycle.ts';

/**
 * Applications in the admin UI: list with filters and search, create (the secret shown once), edit
 * (whitelists picked from the existing states and groups; the SSRF gate's verdict at the back-channel
 * field), rotate the secret and deactivate (each confirmed after its impact is shown), activate, and
 * "send test back-channel logout". Every write is the applications service's, as for the CLI.
 */

/** The applications one test back-channel logout reaches: each is one delivery, made in turn while the page waits. */
const TEST_LOGOUT_MAX = 100;

/** The longest search text (`?q=`), in UTF-16 units as the field's `maxlength` counts. */
const SEARCH_MAX = 100;

/** Outcomes of a test logout that made no request: nothing reached the application's receiver. */
const NOT_REQUESTED: ReadonlySet<BclTestResult['outcome']> = new Set([
  'not_sent',
  'unsafe_target_ip',
  'dns_resolve_failed',
  'signing_kid_retired',
]);

/**
 * A test that sent nothing is refused, as the application pages refuse: 404 when no ticked client_id
 * names an application (each result without a name: a form not the console's, or every one deleted
 * since the list was shown), 409 when each names one that cannot receive a logout now (deactivated,
 * or without a back-channel URI, or its delivery refused before any request: the SSRF gate, a name
 * not resolved, a retired signing key), never 200 as if the relying parties had been reached.
 */
function nothingSentStatus(results: readonly BclTestResult[]): 404 | 409 {
  return results.every((result) => result.name === null) ? 404 : 409;
}

export function applicationRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const load = applicationLoader(deps);
  // In this order: /admin/apps/new before /admin/apps/:clientId.
  return [
    {
      method: 'GET',
      path: '/admin/apps',
      access: 'superuser',
      async handle(request) {
        const query = request.ctx.query;
        const { value: search, error: searchError } = queryFilter(query, 'q', SEARCH_MAX);
        const { value: active, error: activeError } = queryChoice(
          query,
          'active',
          ['active', 'inactive'],
          'status',
        );
        const { value: format, error: formatError } = queryChoice(
          query,
          'format',
          ACCESS_TOKEN_FORMAT_SETTINGS,
          'token format',
        );
        const { value: pkce, error: pkceError } = queryChoice(
          query,
          'pkce',
          ['required', 'optional'],
          'PKCE setting',
        );
        const { value: bcl, error: bclError } = queryChoice(
          query,
          'bcl',
          ['yes', 'no'],
          'back-channel logout setting',
        );
        // The first filter at fault, in the form's order, takes the focus; nothing is listed as if it were "Any".
        const focused = (
          [
            ['q', searchError],
            ['active', activeError],
            ['format', formatError],
            ['pkce', pkceError],
            ['bcl', bclError],
          ] as const
        ).find(([, error]) => error !== undefined)?.[0];
        let apps =
          focused === undefined
            ? await deps.applications.list({
                ...(search === '' ? {} : { search: search.replaceAll('\0', '') }),
                ...(active === '' ? {} : { active: active === 'active' }),
              })
            : [];
        if (format !== '') apps = apps.filter((app) => app.accessTokenFormat === format);
        if (pkce !== '') apps = apps.filter((app) => app.pkceRequired === (pkce === 'required'));
        if (bcl !== '') apps = apps.filter((app) => (app.backchannelLogoutUri !== null) === (bcl === 'yes'));
        renderAdmin(
          request,
          '/admin/apps',
          'Applications',
          html`<h1>Applications</h1>
            <p><a class="button" href="/admin/apps/new">New application</a></p>
            <form method="get" action="/admin/apps" class="filters" role="search">
              <div>
                ${textField('Search', 'q', search, { type: 'search', hint: 'Name or client_id', maxlength: SEARCH_MAX, ...fieldError('q', searchError, focused) })}
              </div>
              <div>
                ${select(
                  'Status',
                  'active',
                  [
                    ['', 'Any'],
                    ['active', 'Active'],
                    ['inactive', 'Inactive'],
                  ],
                  active,
                  fieldError('active', activeError, focused),
                )}
              </div>
              <div>
                ${select('Token format', 'format', [['', 'Any'], ...ACCESS_TOKEN_FORMAT_SETTINGS.map((f) => [f, FORMAT_LABELS[f]] as const)], format, fieldError('format', formatError, focused))}
              </div>
              <div>
                ${select(
                  'PKCE',
                  'pkce',
                  [
                    ['', 'Any'],
                    ['required', 'Required'],
                    ['optional', 'Optional'],
                  ],
                  pkce,
                  fieldError('pkce', pkceError, focused),
                )}
              </div>
              <div>
                ${select(
                  'Back-channel logout',
                  'bcl',
                  [
                    ['', 'Any'],
                    ['yes', 'Configured'],
                    ['no', 'None'],
                  ],
                  bcl,
                  fieldError('bcl', bclError, focused),
                )}
              </div>
              <div><button type="submit">Filter</button></div>
            </form>
            <form method="post" action="/admin/apps/test-logout">
              ${csrfField(request.session)}
              <div class="table-wrap">
                <table>
                  <caption>
                    ${apps.length} application(s)
                  </caption>
                  <thead>
                    <tr>
                      <th scope="col"><span class="note">Test</span></th>
                      <th scope="col">Name</th>
                      <th scope="col">client_id</th>
                      <th scope="col">Status</th>
                      <th scope="col">Format</th>
                      <th scope="col">PKCE</th>
                      <th scope="col">Back-channel</th>
                      <th scope="col">Allowed</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${apps.map(
                      (app) =>
                        html`<tr>
                          <td>
                            <input
                              type="checkbox"
                              name="client_id"
                              value="${app.clientId}"
                              aria-label="Send a test logout to ${app.name}"
                              ${app.backchannelLogoutUri ? '' : html`disabled`}
                            />
                          </td>
                          <td class="name"><a href="${appPath(app.clientId)}">${app.name}</a></td>
                          <td><code>${app.clientId}</code></td>
                          <td>${app.active ? 'active' : html`<strong>inactive</strong>`}</td>
                          <td>${app.accessTokenFormat}</td>
                          <td>${app.pkceRequired ? 'required' : 'optional'}</td>
                          <td>${app.backchannelLogoutUri ? 'yes' : 'no'}</td>
                          <td>
                            ${app.states.length + app.groups.length === 0 ? html`<em>everyone</em>` : [...app.states, ...app.groups].join(', ')}
                          </td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </div>
              <p class="hint">At most ${TEST_LOGOUT_MAX} applications at a time.</p>
              <button type="submit" class="secondary">
                Send test back-channel logout to the ticked applications
              </button>
            </form>`,
          { status: focused === undefined ? 200 : 400 },
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/test-logout',
      access: 'superuser',
      // One checkbox an application.
      multiValued: ['client_id'],
      async handle(request) {
        const clientIds = [...new Set(request.form.getAll('client_id'))];
        const refusal =
          clientIds.length === 0
            ? 'Tick at least one application with a back-channel logout URI.'
            : clientIds.length > TEST_LOGOUT_MAX
              ? `Nothing was sent: ${clientIds.length} applications are ticked, and at most ${TEST_LOGOUT_MAX} are tested at a time. Tick at most ${TEST_LOGOUT_MAX}, then the rest.`
              : undefined;
        const refuse = (status: number, message: string) =>
          renderAdmin(
            request,
            '/admin/apps',
            'Test back-channel logout',
            html`<h1>Test back-channel logout</h1>
              <p class="alert" role="alert">${message}</p>
              <p><a href="/admin/apps">Back to the applications</a></p>`,
            { status },
          );
        if (refusal !== undefined) {
          refuse(400, refusal);
          return;
        }
        let results: BclTestResult[];
        try {
          results = await deps.logout.testDelivery(clientIds);
        } catch (error) {
          // The process is shutting down (its logout service closed before this request reached it).
          if (!(error instanceof LogoutServiceClosedError)) throw error;
          request.ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
          refuse(503, 'Nothing was sent: the server is shutting down. Try again in a few seconds.');
          return;
        }
        const sent = results.some((result) => !NOT_REQUESTED.has(result.outcome));
        renderAdmin(
          request,
          '/admin/apps',
          'Test back-channel logout',
          html`<h1>Test back-channel logout</h1>
            ${
              sent
                ? html`<p>
                    Each logout token sent is for a subject that is no user, so nobody is signed out.
                  </p>`
                : formAlert(
                    'Nothing was sent: none of the ticked applications can receive a test logout. The table says why for each.',
                  )
            }
            ${testResults(results)}
            <p><a href="/admin/apps">Back to the applications</a></p>`,
          { status: sent ? 200 : nothingSentStatus(results) },
        );
      },
    },
    ...createRoutes(deps),
    ...showRoute(deps, load),
    ...editRoutes(deps, load),
    ...lifecycleRoutes(deps, load),
  ];
}
