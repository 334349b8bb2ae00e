import { ACCESS_TOKEN_FORMAT_SETTINGS } from '../applications/types.ts';
import type { ConsoleRoute } from '../console/http.ts';
import { csrfField, queryText, select, textField } from '../console/ui.ts';
import { html } from '../http/pages/layout.ts';
import { type AdminDependencies, renderAdmin } from './context.ts';
import { applicationLoader, appPath, FORMAT_LABELS, testResults } from './application-parts.ts';
import { createRoutes, editRoutes } from './application-edit.ts';
import { lifecycleRoutes, showRoute } from './application-lifecycle.ts';

/**
 * Applications in the admin UI: list with filters and search, create (the secret shown once), edit
 * (whitelists picked from the existing states and groups; the SSRF gate's verdict at the back-channel
 * field), rotate the secret and deactivate (each confirmed after its impact is shown), activate, and
 * "send test back-channel logout". Every write is the applications service's, as for the CLI.
 */

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
        const search = queryText(query, 'q', 100);
        const active = queryText(query, 'active');
        const format = queryText(query, 'format');
        const pkce = queryText(query, 'pkce');
        const bcl = queryText(query, 'bcl');
        let apps = await deps.applications.list({
          ...(search === '' ? {} : { search: search.replaceAll('\0', '') }),
          ...(active === 'active' ? { active: true } : active === 'inactive' ? { active: false } : {}),
        });
        if ((ACCESS_TOKEN_FORMAT_SETTINGS as readonly string[]).includes(format))
          apps = apps.filter((app) => app.accessTokenFormat === format);
        if (pkce === 'required' || pkce === 'optional')
          apps = apps.filter((app) => app.pkceRequired === (pkce === 'required'));
        if (bcl === 'yes' || bcl === 'no')
          apps = apps.filter((app) => (app.backchannelLogoutUri !== null) === (bcl === 'yes'));
        renderAdmin(
          request,
          '/admin/apps',
          'Applications',
          html`<h1>Applications</h1>
            <p><a class="button" href="/admin/apps/new">New application</a></p>
            <form method="get" action="/admin/apps" class="filters" role="search">
              <div>${textField('Search', 'q', search, { type: 'search', hint: 'Name or client_id' })}</div>
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
                )}
              </div>
              <div>
                ${select('Token format', 'format', [['', 'Any'], ...ACCESS_TOKEN_FORMAT_SETTINGS.map((f) => [f, FORMAT_LABELS[f]] as const)], format)}
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
                          <td><a href="${appPath(app.clientId)}">${app.name}</a></td>
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
              <button type="submit" class="secondary">
                Send test back-channel logout to the ticked applications
              </button>
            </form>`,
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/test-logout',
      access: 'superuser',
      async handle(request) {
        const clientIds = [...new Set(request.form.getAll('client_id'))].slice(0, 100);
        if (clientIds.length === 0) {
          renderAdmin(
            request,
            '/admin/apps',
            'Test back-channel logout',
            html`<h1>Test back-channel logout</h1>
              <p class="alert" role="alert">Tick at least one application with a back-channel logout URI.</p>
              <p><a href="/admin/apps">Back to the applications</a></p>`,
            { status: 400 },
          );
          return;
        }
        const results = await deps.logout.testDelivery(clientIds);
        renderAdmin(
          request,
          '/admin/apps',
          'Test back-channel logout',
          html`<h1>Test back-channel logout</h1>
            <p>
              Each application received one logout token for a subject that is no user, so nobody is signed
              out.
            </p>
            ${testResults(results)}
            <p><a href="/admin/apps">Back to the applications</a></p>`,
        );
      },
    },
    ...createRoutes(deps),
    ...showRoute(deps, load),
    ...editRoutes(deps, load),
    ...lifecycleRoutes(deps, load),
  ];
}
