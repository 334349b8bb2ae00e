import { ApplicationError } from '../applications/errors.ts';
import {
  ACCESS_TOKEN_FORMAT_SETTINGS,
  type AccessTokenFormatSetting,
  type Application,
  type ApplicationInput,
  GRANT_TYPES,
  type GrantType,
} from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { CONSOLE_SCRIPT_PATH } from '../console/routes.ts';
import {
  checkbox,
  checkboxGroup,
  csrfField,
  doneMessage,
  formatTime,
  linesField,
  postButton,
  queryText,
  select,
  textField,
} from '../console/ui.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { listTokens } from '../tokens/listing.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';

/**
 * Applications in the admin UI: list with filters and search, create (the secret shown once), edit
 * (whitelists picked from the existing states and groups; the SSRF gate's verdict at the back-channel
 * field), rotate the secret and deactivate (each confirmed after its impact is shown), activate, and
 * "send test back-channel logout". Every write is the applications service's, as for the CLI.
 */

const DONE: Readonly<Record<string, string>> = {
  updated: 'Saved.',
  unchanged: 'Nothing changed.',
  activated: 'The application is active again.',
  deactivated: 'The application is deactivated: it can do nothing until it is activated again.',
};

const GRANT_LABELS: Readonly<Record<GrantType, string>> = {
  authorization_code: 'Authorization code (sign-in)',
  refresh_token: 'Refresh tokens',
  client_credentials: 'Client credentials (the application alone, no user)',
};

const FORMAT_LABELS: Readonly<Record<AccessTokenFormatSetting, string>> = {
  inherit: 'Server default',
  opaque: 'Opaque',
  jwt: 'JWT (RFC 9068)',
};

const yesNo = (value: boolean) => (value ? 'yes' : 'no');

function appPath(clientId: string, suffix = ''): string {
  return `/admin/apps/${encodeURIComponent(clientId)}${suffix}`;
}

/** The fields of the create and edit forms, as the form posts them. */
interface AppForm {
  name: string;
  logoUrl: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  clientType: 'confidential' | 'public';
  grantTypes: GrantType[];
  skipAuthorization: boolean;
  states: string[];
  groups: string[];
  pkceRequired: boolean;
  accessTokenFormat: AccessTokenFormatSetting;
  backchannelLogoutUri: string;
  backchannelLogoutOnRevokeOnly: boolean;
  debugMode: boolean;
}

function lines(text: string | null): string[] {
  return (text ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

function readForm(form: URLSearchParams): AppForm {
  const format = form.get('access_token_format') ?? 'inherit';
  return {
    name: (form.get('name') ?? '').trim(),
    logoUrl: (form.get('logo_url') ?? '').trim(),
    redirectUris: lines(form.get('redirect_uris')),
    postLogoutRedirectUris: lines(form.get('post_logout_redirect_uris')),
    clientType: form.get('client_type') === 'public' ? 'public' : 'confidential',
    grantTypes: form
      .getAll('grant_types')
      .filter((grant): grant is GrantType => (GRANT_TYPES as readonly string[]).includes(grant)),
    skipAuthorization: form.has('skip_authorization'),
    states: form.getAll('states'),
    groups: form.getAll('groups'),
    pkceRequired: form.has('pkce_required'),
    accessTokenFormat: (ACCESS_TOKEN_FORMAT_SETTINGS as readonly string[]).includes(format)
      ? (format as AccessTokenFormatSetting)
      : 'inherit',
    backchannelLogoutUri: (form.get('backchannel_logout_uri') ?? '').trim(),
    backchannelLogoutOnRevokeOnly: form.has('backchannel_logout_on_revoke_only'),
    debugMode: form.has('debug_mode'),
  };
}

function formOf(app: Application): AppForm {
  return {
    name: app.name,
    logoUrl: app.logoUrl ?? '',
    redirectUris: app.redirectUris,
    postLogoutRedirectUris: app.postLogoutRedirectUris,
    clientType: app.clientType,
    grantTypes: app.grantTypes,
    skipAuthorization: app.skipAuthorization,
    states: app.states,
    groups: app.groups,
    pkceRequired: app.pkceRequired,
    accessTokenFormat: app.accessTokenFormat,
    backchannelLogoutUri: app.backchannelLogoutUri ?? '',
    backchannelLogoutOnRevokeOnly: app.backchannelLogoutOnRevokeOnly,
    debugMode: app.debugMode,
  };
}

const NEW_APP: AppForm = {
  name: '',
  logoUrl: '',
  redirectUris: [],
  postLogoutRedirectUris: [],
  clientType: 'confidential',
  grantTypes: ['authorization_code', 'refresh_token'],
  skipAuthorization: false,
  states: [],
  groups: [],
  pkceRequired: true,
  accessTokenFormat: 'inherit',
  backchannelLogoutUri: '',
  backchannelLogoutOnRevokeOnly: false,
  debugMode: false,
};

function inputOf(form: AppForm): Omit<ApplicationInput, 'clientId' | 'clientType'> {
  return {
    name: form.name,
    logoUrl: form.logoUrl === '' ? null : form.logoUrl,
    redirectUris: form.redirectUris,
    postLogoutRedirectUris: form.postLogoutRedirectUris,
    grantTypes: form.grantTypes,
    skipAuthorization: form.skipAuthorization,
    states: form.states,
    groups: form.groups,
    pkceRequired: form.pkceRequired,
    accessTokenFormat: form.accessTokenFormat,
    backchannelLogoutUri: form.backchannelLogoutUri === '' ? null : form.backchannelLogoutUri,
    backchannelLogoutOnRevokeOnly: form.backchannelLogoutOnRevokeOnly,
    debugMode: form.debugMode,
  };
}

/** The service's problems by form field (`redirect_uris[2]` → `redirect_uris`); the rest go on top. */
function errorsByField(error: ApplicationError): Map<string, string> {
  const byField = new Map<string, string>();
  for (const issue of error.issues) {
    const field = issue.field.replace(/\[\d+\]$/, '');
    const known = [
      'name',
      'logo_url',
      'redirect_uris',
      'post_logout_redirect_uris',
      'client_type',
      'grant_types',
      'states',
      'groups',
      'pkce_required',
      'access_token_format',
      'backchannel_logout_uri',
    ].includes(field)
      ? field
      : '';
    const text = known === '' ? `${issue.field}: ${issue.message}` : issue.message;
    byField.set(known, byField.has(known) ? `${byField.get(known)!} ${text}` : text);
  }
  return byField;
}

async function directoryNames(deps: AdminDependencies): Promise<{ states: string[]; groups: string[] }> {
  const [states, groups] = await Promise.all([deps.directory.listStates(), deps.directory.listGroups()]);
  return { states: states.map((state) => state.name), groups: groups.map((group) => group.name) };
}

function appForm(
  request: ConsoleRequest,
  action: string,
  values: AppForm,
  names: { states: string[]; groups: string[] },
  errors: Map<string, string>,
  creating: boolean,
): Html {
  const error = (field: string) => errors.get(field);
  const opt = (field: string) => {
    const message = error(field);
    return message === undefined ? {} : { error: message };
  };
  return html`${
      errors.has('')
        ? html`<p class="alert" role="alert" id="form-error">${errors.get('')}</p>`
        : errors.size > 0
          ? html`<p class="alert" role="alert">Some fields need attention; each says what is wrong.</p>`
          : ''
    }
    <form method="post" action="${action}" novalidate>
      ${csrfField(request.session)}
      ${textField('Name', 'name', values.name, { required: true, maxlength: 100, ...opt('name') })}
      ${textField('Logo URL', 'logo_url', values.logoUrl, {
        type: 'url',
        hint: 'Shown on the consent page (https).',
        ...opt('logo_url'),
      })}
      ${linesField('Redirect URIs', 'redirect_uris', values.redirectUris, {
        hint: 'One per line; matched exactly.',
        ...opt('redirect_uris'),
      })}
      ${linesField('Post-logout redirect URIs', 'post_logout_redirect_uris', values.postLogoutRedirectUris, {
        hint: 'One per line.',
        ...opt('post_logout_redirect_uris'),
      })}
      ${
        creating
          ? select(
              'Client type',
              'client_type',
              [
                ['confidential', 'Confidential (has a secret: a server-side application)'],
                ['public', 'Public (no secret: a browser or mobile application; PKCE required)'],
              ],
              values.clientType,
              opt('client_type'),
            )
          : ''
      }
      <fieldset>
        <legend>Grant types</legend>
        ${GRANT_TYPES.map((grant) => checkbox(GRANT_LABELS[grant], 'grant_types', values.grantTypes.includes(grant), { value: grant }))}
        ${error('grant_types') ? html`<p class="field-error">${error('grant_types')}</p>` : ''}
      </fieldset>
      ${checkboxGroup('States allowed', 'states', names.states, values.states, {
        hint: 'With no state and no group ticked, everyone past the global gate may use it.',
        empty: 'No states exist yet.',
        ...opt('states'),
      })}
      ${checkboxGroup('Groups allowed', 'groups', names.groups, values.groups, {
        empty: 'No groups exist yet.',
        ...opt('groups'),
      })}
      ${select(
        'Access token format',
        'access_token_format',
        ACCESS_TOKEN_FORMAT_SETTINGS.map((format) => [format, FORMAT_LABELS[format]] as const),
        values.accessTokenFormat,
        opt('access_token_format'),
      )}
      ${textField('Back-channel logout URI', 'backchannel_logout_uri', values.backchannelLogoutUri, {
        type: 'url',
        hint: 'Receives a logout token when a user signs out or loses access. Public https addresses only.',
        ...opt('backchannel_logout_uri'),
      })}
      <fieldset>
        <legend>Options</legend>
        ${checkbox('Require PKCE', 'pkce_required', values.pkceRequired)}
        ${checkbox('Skip the consent page', 'skip_authorization', values.skipAuthorization)}
        ${checkbox('Back-channel logout only when tokens are revoked', 'backchannel_logout_on_revoke_only', values.backchannelLogoutOnRevokeOnly)}
        ${checkbox('Debug logging (verbose, still redacted)', 'debug_mode', values.debugMode)}
        ${error('pkce_required') ? html`<p class="field-error">${error('pkce_required')}</p>` : ''}
      </fieldset>
      <div class="actions">
        <button type="submit">${creating ? 'Create application' : 'Save changes'}</button>
        <a href="${creating ? '/admin/apps' : action.replace(/\/edit$/, '')}">Cancel</a>
      </div>
    </form>`;
}

/** The secret, once: in a read-only field (selectable without JavaScript) with a copy button. */
function secretOnce(clientId: string, secret: string): Html {
  return html`<p class="warn" role="status">
      Copy the client secret now: it is shown only once. Only its SHA-256 digest is stored.
    </p>
    <dl class="facts">
      <dt>client_id</dt>
      <dd><code>${clientId}</code></dd>
    </dl>
    <label for="client-secret">Client secret</label>
    <input
      type="text"
      id="client-secret"
      name="client_secret"
      class="secret mono"
      value="${secret}"
      readonly
      autocomplete="off"
      spellcheck="false"
    />
    <button type="button" class="secondary" data-copy="client-secret" hidden>Copy secret</button>
    <script src="${CONSOLE_SCRIPT_PATH}" defer></script>`;
}

async function liveTokenImpact(
  deps: AdminDependencies,
  clientId: string,
): Promise<{ tokens: number; users: number }> {
  const tokens = await listTokens(deps.db, { clientId });
  const live = tokens.filter((token) => token.status === 'active');
  return {
    tokens: live.length,
    users: new Set(live.map((token) => token.userId).filter((id) => id !== null)).size,
  };
}

function testResults(results: Awaited<ReturnType<AdminDependencies['logout']['testDelivery']>>): Html {
  return html`<div class="table-wrap">
    <table>
      <caption>
        Test back-channel logout, one attempt per application
      </caption>
      <thead>
        <tr>
          <th scope="col">Application</th>
          <th scope="col">Outcome</th>
          <th scope="col">HTTP</th>
          <th scope="col">Detail</th>
        </tr>
      </thead>
      <tbody>
        ${results.map(
          (result) =>
            html`<tr>
              <td>${result.name ?? result.clientId}<br /><code>${result.clientId}</code></td>
              <td><strong>${result.outcome}</strong></td>
              <td>${result.httpStatus ?? '—'}</td>
              <td>${result.detail}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

export function applicationRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const load = async (request: ConsoleRequest): Promise<Application | undefined> => {
    const app = await deps.applications.findByClientId(request.params.clientId ?? '');
    if (!app)
      renderAdmin(
        request,
        '/admin/apps',
        'No such application',
        html`<h1>No such application</h1>
          <p><a href="/admin/apps">All applications</a></p>`,
        { status: 404 },
      );
    return app;
  };

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
    {
      method: 'GET',
      path: '/admin/apps/new',
      access: 'superuser',
      async handle(request) {
        renderAdmin(
          request,
          '/admin/apps',
          'New application',
          html`<h1>New application</h1>
            ${appForm(request, '/admin/apps/new', NEW_APP, await directoryNames(deps), new Map(), true)}`,
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/new',
      access: 'superuser',
      async handle(request) {
        const values = readForm(request.form);
        try {
          const created = await deps.applications.create(
            { ...inputOf(values), clientType: values.clientType },
            adminActor(request),
          );
          const { application, clientSecret } = created;
          renderAdmin(
            request,
            '/admin/apps',
            'Application created',
            html`<h1>Application ${application.name} created</h1>
              ${
                clientSecret === null
                  ? html`<p class="ok" role="status">A public client: it has no secret.</p>
                      <dl class="facts">
                        <dt>client_id</dt>
                        <dd><code>${application.clientId}</code></dd>
                      </dl>`
                  : secretOnce(application.clientId, clientSecret)
              }
              <p><a href="${appPath(application.clientId)}">Go to the application</a></p>`,
            { status: 201 },
          );
        } catch (error) {
          if (!(error instanceof ApplicationError) || error.code === 'not_found') throw error;
          renderAdmin(
            request,
            '/admin/apps',
            'New application',
            html`<h1>New application</h1>
              ${appForm(request, '/admin/apps/new', values, await directoryNames(deps), errorsByField(error), true)}`,
            { status: 400 },
          );
        }
      },
    },
    {
      method: 'GET',
      path: '/admin/apps/:clientId',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        const impact = await liveTokenImpact(deps, app.clientId);
        renderAdmin(
          request,
          '/admin/apps',
          app.name,
          html`${app.logoUrl ? html`<img class="logo" src="${app.logoUrl}" alt="${app.name} logo" />` : ''}
            <h1>${app.name}</h1>
            ${doneMessage(DONE, request.ctx.query.done)}
            <dl class="facts">
              <dt>client_id</dt>
              <dd><code>${app.clientId}</code></dd>
              <dt>Status</dt>
              <dd>${app.active ? 'active' : html`<strong>inactive</strong> (can do nothing)`}</dd>
              <dt>Client type</dt>
              <dd>${app.clientType}</dd>
              <dt>Redirect URIs</dt>
              <dd>
                ${app.redirectUris.length === 0 ? '—' : app.redirectUris.map((uri) => html`<code>${uri}</code><br />`)}
              </dd>
              <dt>Post-logout redirect URIs</dt>
              <dd>
                ${app.postLogoutRedirectUris.length === 0 ? '—' : app.postLogoutRedirectUris.map((uri) => html`<code>${uri}</code><br />`)}
              </dd>
              <dt>Grant types</dt>
              <dd>${app.grantTypes.join(', ')}</dd>
              <dt>States allowed</dt>
              <dd>${app.states.length === 0 ? '—' : app.states.join(', ')}</dd>
              <dt>Groups allowed</dt>
              <dd>${app.groups.length === 0 ? '—' : app.groups.join(', ')}</dd>
              <dt>Who may sign in</dt>
              <dd>
                ${app.states.length + app.groups.length === 0 ? 'everyone past the global gate' : 'users in an allowed state or group (and superusers)'}
              </dd>
              <dt>Access token format</dt>
              <dd>${FORMAT_LABELS[app.accessTokenFormat]}</dd>
              <dt>PKCE required</dt>
              <dd>${yesNo(app.pkceRequired)}</dd>
              <dt>Consent page</dt>
              <dd>${app.skipAuthorization ? 'skipped' : 'shown'}</dd>
              <dt>Back-channel logout URI</dt>
              <dd>
                ${app.backchannelLogoutUri ? html`<code>${app.backchannelLogoutUri}</code>${app.backchannelLogoutOnRevokeOnly ? ' (only on revocation)' : ''}` : '—'}
              </dd>
              <dt>Debug logging</dt>
              <dd>${yesNo(app.debugMode)}</dd>
              <dt>Live tokens</dt>
              <dd>${impact.tokens} token(s) of ${impact.users} user(s)</dd>
              <dt>Created</dt>
              <dd>${formatTime(app.createdAt)}${app.createdBy ? ` by ${app.createdBy}` : ''}</dd>
              <dt>Updated</dt>
              <dd>${formatTime(app.updatedAt)}</dd>
            </dl>
            <div class="actions">
              <a class="button" href="${appPath(app.clientId, '/edit')}">Edit</a>
              ${app.clientType === 'confidential' ? html`<a class="button secondary" href="${appPath(app.clientId, '/rotate-secret')}">Rotate secret…</a>` : ''}
              ${
                app.active
                  ? html`<a class="button secondary" href="${appPath(app.clientId, '/deactivate')}"
                      >Deactivate…</a
                    >`
                  : postButton(request.session, appPath(app.clientId, '/activate'), 'Activate')
              }
              ${
                app.backchannelLogoutUri
                  ? postButton(request.session, '/admin/apps/test-logout', 'Send test back-channel logout', {
                      kind: 'secondary',
                      fields: { client_id: app.clientId },
                    })
                  : ''
              }
            </div>
            <p>
              <a href="/admin/deliveries?client_id=${encodeURIComponent(app.clientId)}"
                >Back-channel deliveries</a
              >
              · <a href="/admin/audit?client_id=${encodeURIComponent(app.clientId)}">Audit events</a> ·
              <a href="/admin/code-reuse?client_id=${encodeURIComponent(app.clientId)}">Code reuse</a>
            </p>`,
        );
      },
    },
    {
      method: 'GET',
      path: '/admin/apps/:clientId/edit',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        renderAdmin(
          request,
          '/admin/apps',
          `Edit ${app.name}`,
          html`<h1>Edit ${app.name}</h1>
            ${appForm(request, appPath(app.clientId, '/edit'), formOf(app), await directoryNames(deps), new Map(), false)}`,
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/:clientId/edit',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        const values = readForm(request.form);
        try {
          const result = await deps.applications.update(app.clientId, inputOf(values), adminActor(request));
          request.seeOther(
            `${appPath(app.clientId)}?done=${result.changedFields.length > 0 ? 'updated' : 'unchanged'}`,
          );
        } catch (error) {
          if (!(error instanceof ApplicationError) || error.code === 'not_found') throw error;
          renderAdmin(
            request,
            '/admin/apps',
            `Edit ${app.name}`,
            html`<h1>Edit ${app.name}</h1>
              ${appForm(request, appPath(app.clientId, '/edit'), { ...values, clientType: app.clientType }, await directoryNames(deps), errorsByField(error), false)}`,
            { status: 400 },
          );
        }
      },
    },
    {
      method: 'GET',
      path: '/admin/apps/:clientId/rotate-secret',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        // The same computation as `app rotate-secret --dry-run`: validates, writes nothing.
        let refusal: string | undefined;
        try {
          await deps.applications.rotateSecret(app.clientId, adminActor(request), { dryRun: true });
        } catch (error) {
          if (!(error instanceof ApplicationError)) throw error;
          refusal = error.message;
        }
        const impact = await liveTokenImpact(deps, app.clientId);
        renderAdmin(
          request,
          '/admin/apps',
          `Rotate the secret of ${app.name}`,
          html`<h1>Rotate the secret of ${app.name}?</h1>
            ${
              refusal
                ? html`<p class="alert" role="alert">${refusal}</p>`
                : html`<div class="warn">
                      <p><strong>What happens:</strong></p>
                      <ul>
                        <li>
                          The current secret stops working at once: ${app.name} cannot exchange codes,
                          refresh, introspect or revoke until it is configured with the new one.
                        </li>
                        <li>
                          Tokens already issued keep working until they expire (${impact.tokens} live token(s)
                          of ${impact.users} user(s)).
                        </li>
                        <li>The new secret is shown once, on the next page.</li>
                      </ul>
                    </div>
                    <form method="post" action="${appPath(app.clientId, '/rotate-secret')}">
                      ${csrfField(request.session)}
                      <div class="actions">
                        <button type="submit" class="danger">Rotate the secret</button>
                        <a href="${appPath(app.clientId)}">Cancel</a>
                      </div>
                    </form>`
            }`,
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/:clientId/rotate-secret',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        try {
          const { clientSecret } = await deps.applications.rotateSecret(app.clientId, adminActor(request));
          renderAdmin(
            request,
            '/admin/apps',
            'New client secret',
            html`<h1>New secret for ${app.name}</h1>
              ${clientSecret ? secretOnce(app.clientId, clientSecret) : ''}
              <p><a href="${appPath(app.clientId)}">Back to the application</a></p>`,
          );
        } catch (error) {
          if (!(error instanceof ApplicationError) || error.code === 'not_found') throw error;
          renderAdmin(
            request,
            '/admin/apps',
            'Secret not rotated',
            html`<h1>Secret not rotated</h1>
              <p class="alert" role="alert">${error.message}</p>`,
            { status: 400 },
          );
        }
      },
    },
    {
      method: 'GET',
      path: '/admin/apps/:clientId/deactivate',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        // The same computation as `app deactivate --dry-run`, and who holds live tokens now.
        const preview = await deps.applications.deactivate(app.clientId, adminActor(request), {
          dryRun: true,
        });
        const impact = await liveTokenImpact(deps, app.clientId);
        renderAdmin(
          request,
          '/admin/apps',
          `Deactivate ${app.name}`,
          html`<h1>Deactivate ${app.name}?</h1>
            ${
              app.active === preview.active
                ? html`<p class="ok">The application is already inactive: nothing would change.</p>`
                : html`<div class="warn">
                      <p><strong>What happens:</strong></p>
                      <ul>
                        <li>
                          ${app.name} can do nothing from its next request: no sign-in, no token, no refresh,
                          no introspection.
                        </li>
                        <li>
                          ${impact.tokens} live token(s) of ${impact.users} user(s) stop working at once.
                        </li>
                        <li>No back-channel logout is sent: a deactivated application receives none.</li>
                        <li>
                          Activating it again restores it; tokens that expired meanwhile do not come back.
                        </li>
                      </ul>
                    </div>
                    <form method="post" action="${appPath(app.clientId, '/deactivate')}">
                      ${csrfField(request.session)}
                      <div class="actions">
                        <button type="submit" class="danger">Deactivate ${app.name}</button>
                        <a href="${appPath(app.clientId)}">Cancel</a>
                      </div>
                    </form>`
            }`,
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/:clientId/deactivate',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        await deps.applications.deactivate(app.clientId, adminActor(request));
        request.seeOther(`${appPath(app.clientId)}?done=deactivated`);
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/:clientId/activate',
      access: 'superuser',
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        await deps.applications.activate(app.clientId, adminActor(request));
        request.seeOther(`${appPath(app.clientId)}?done=activated`);
      },
    },
  ];
}
