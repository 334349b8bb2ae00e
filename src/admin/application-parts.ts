import type { ApplicationError } from '../applications/errors.ts';
import {
  ACCESS_TOKEN_FORMAT_SETTINGS,
  type AccessTokenFormatSetting,
  type Application,
  type ApplicationInput,
  GRANT_TYPES,
  type GrantType,
} from '../applications/types.ts';
import type { ConsoleRequest } from '../console/http.ts';
import {
  checkbox,
  checkboxGroup,
  checkedChoices,
  choiceFields,
  csrfField,
  formAlert,
  linesField,
  select,
  textField,
} from '../console/ui.ts';
import { html, type Html, sentBackUntouched } from '../http/pages/layout.ts';
import { listTokens } from '../tokens/listing.ts';
import { type AdminDependencies, renderAdmin } from './context.ts';

/** What the application pages share: labels, the create and edit form, the secret shown once, impacts. */

export const DONE: Readonly<Record<string, string>> = {
  updated: 'Saved.',
  updated_access_ended:
    'Saved. The users who signed in here and whom the new whitelists no longer admit were signed out of it: their tokens here revoked, a back-channel logout queued.',
  unchanged: 'Nothing changed.',
  activated: 'The application is active again.',
  activated_access_ended:
    'The application is active again. The users who signed in here and whom it no longer admits (their state or groups changed, or its whitelists narrowed, while it was deactivated) were signed out of it: their tokens here revoked, a back-channel logout queued.',
  deactivated: 'The application is deactivated: it can do nothing until it is activated again.',
};

export const GRANT_LABELS: Readonly<Record<GrantType, string>> = {
  authorization_code: 'Authorization code (sign-in)',
  refresh_token: 'Refresh tokens',
  client_credentials: 'Client credentials (the application alone, no user)',
};

export const FORMAT_LABELS: Readonly<Record<AccessTokenFormatSetting, string>> = {
  inherit: 'Server default',
  opaque: 'Opaque',
  jwt: 'JWT (RFC 9068)',
};

export const yesNo = (value: boolean) => (value ? 'yes' : 'no');

export function appPath(clientId: string, suffix = ''): string {
  return `/admin/apps/${encodeURIComponent(clientId)}${suffix}`;
}

/**
 * The fields of the create and edit forms, as the form posts them: a choice is the text sent, which the
 * applications service refuses (naming the field and its values) when it is none of them.
 */
export interface AppForm {
  name: string;
  logoUrl: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  clientType: string;
  grantTypes: string[];
  skipAuthorization: boolean;
  states: string[];
  groups: string[];
  pkceRequired: boolean;
  accessTokenFormat: string;
  backchannelLogoutUri: string;
  backchannelLogoutOnRevokeOnly: boolean;
  idTokenClaims: boolean;
  debugMode: boolean;
}

export function lines(text: string | null): string[] {
  return (text ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** The application form's groups of checkboxes: the fields `readForm` reads every value of. */
export const APP_FORM_LISTS: readonly string[] = [
  'grant_types',
  ...choiceFields('states'),
  ...choiceFields('groups'),
];

export function readForm(form: URLSearchParams): AppForm {
  return {
    name: (form.get('name') ?? '').trim(),
    logoUrl: (form.get('logo_url') ?? '').trim(),
    redirectUris: lines(form.get('redirect_uris')),
    postLogoutRedirectUris: lines(form.get('post_logout_redirect_uris')),
    clientType: form.get('client_type') ?? 'confidential',
    grantTypes: form.getAll('grant_types'),
    skipAuthorization: form.has('skip_authorization'),
    states: checkedChoices(form, 'states'),
    groups: checkedChoices(form, 'groups'),
    pkceRequired: form.has('pkce_required'),
    accessTokenFormat: form.get('access_token_format') ?? 'inherit',
    backchannelLogoutUri: (form.get('backchannel_logout_uri') ?? '').trim(),
    backchannelLogoutOnRevokeOnly: form.has('backchannel_logout_on_revoke_only'),
    idTokenClaims: form.has('id_token_claims'),
    debugMode: form.has('debug_mode'),
  };
}

export function formOf(app: Application): AppForm {
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
    idTokenClaims: app.idTokenClaims,
    debugMode: app.debugMode,
  };
}

/** The edit form's fields as its labels name them, in the form's order (the client type is fixed). */
const FIELD_LABELS: ReadonlyArray<readonly [Exclude<keyof AppForm, 'clientType'>, string]> = [
  ['name', 'Name'],
  ['logoUrl', 'Logo URL'],
  ['redirectUris', 'Redirect URIs'],
  ['postLogoutRedirectUris', 'Post-logout redirect URIs'],
  ['grantTypes', 'Grant types'],
  ['states', 'States allowed'],
  ['groups', 'Groups allowed'],
  ['accessTokenFormat', 'Access token format'],
  ['backchannelLogoutUri', 'Back-channel logout URI'],
  ['pkceRequired', 'Require PKCE'],
  ['skipAuthorization', 'Skip the consent page'],
  ['backchannelLogoutOnRevokeOnly', 'Back-channel logout only when tokens are revoked'],
  ['idTokenClaims', 'The granted scopes’ claims in the ID token'],
  ['debugMode', 'Debug logging'],
];

/** Fields whose order means nothing (ticked boxes): compared and shown sorted. */
const UNORDERED: ReadonlySet<keyof AppForm> = new Set(['grantTypes', 'states', 'groups']);

/**
 * Each field where the values a form sent differ from `stored` (the application as it is now, as its
 * form shows it), with both values as the page shows them: a list sorted when its order means nothing,
 * `—` for nothing.
 */
export function formDifferences(
  sent: AppForm,
  stored: AppForm,
): Array<{ label: string; now: string; sent: string }> {
  const shown = (field: keyof AppForm, value: AppForm[keyof AppForm]): string => {
    if (typeof value === 'boolean') return yesNo(value);
    if (Array.isArray(value)) {
      const items = UNORDERED.has(field) ? [...value].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) : value;
      return items.length === 0 ? '—' : items.join(', ');
    }
    if (field === 'accessTokenFormat' && Object.hasOwn(FORMAT_LABELS, value))
      return FORMAT_LABELS[value as AccessTokenFormatSetting];
    return value === '' ? '—' : value;
  };
  const key = (field: keyof AppForm, value: AppForm[keyof AppForm]) =>
    JSON.stringify(Array.isArray(value) && UNORDERED.has(field) ? [...value].sort() : value);
  return FIELD_LABELS.filter(([field]) => key(field, sent[field]) !== key(field, stored[field])).map(
    ([field, label]) => ({ label, now: shown(field, stored[field]), sent: shown(field, sent[field]) }),
  );
}

export const NEW_APP: AppForm = {
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
  idTokenClaims: false,
  debugMode: false,
};

/** The service's input, the choices as sent: the service checks them, as it does the CLI's (run-time checks). */
export function inputOf(form: AppForm): Omit<ApplicationInput, 'clientId' | 'clientType'> {
  return {
    name: form.name,
    logoUrl: form.logoUrl === '' ? null : form.logoUrl,
    redirectUris: form.redirectUris,
    postLogoutRedirectUris: form.postLogoutRedirectUris,
    grantTypes: form.grantTypes as GrantType[],
    skipAuthorization: form.skipAuthorization,
    states: form.states,
    groups: form.groups,
    pkceRequired: form.pkceRequired,
    accessTokenFormat: form.accessTokenFormat as AccessTokenFormatSetting,
    backchannelLogoutUri: form.backchannelLogoutUri === '' ? null : form.backchannelLogoutUri,
    backchannelLogoutOnRevokeOnly: form.backchannelLogoutOnRevokeOnly,
    idTokenClaims: form.idTokenClaims,
    debugMode: form.debugMode,
  };
}

/** The fields of the application form that show their own error, in the form's order. */
const FORM_FIELDS: readonly string[] = [
  'name',
  'logo_url',
  'redirect_uris',
  'post_logout_redirect_uris',
  'client_type',
  'grant_types',
  'states',
  'groups',
  'access_token_format',
  'backchannel_logout_uri',
  'pkce_required',
];

/** The service's problems by form field (`redirect_uris[2]` → `redirect_uris`); the rest go on top. */
export function errorsByField(error: ApplicationError): Map<string, string> {
  const byField = new Map<string, string>();
  for (const issue of error.issues) {
    const field = issue.field.replace(/\[\d+\]$/, '');
    const known = FORM_FIELDS.includes(field) ? field : '';
    const text = known === '' ? `${issue.field}: ${issue.message}` : issue.message;
    byField.set(known, byField.has(known) ? `${byField.get(known)!} ${text}` : text);
  }
  return byField;
}

export async function directoryNames(
  deps: AdminDependencies,
): Promise<{ states: string[]; groups: string[] }> {
  const [states, groups] = await Promise.all([deps.directory.listStates(), deps.directory.listGroups()]);
  return { states: states.map((state) => state.name), groups: groups.map((group) => group.name) };
}

/**
 * What the application form carries besides its fields: a new application's client_id, or the
 * version (`updatedAt`) of the application an edit form shows, with what a refused edit would have
 * changed of it as it is now (shown under the alert).
 */
export type AppFormMode =
  { creating: true; newClientId: string } | { creating: false; version: number; differences?: Html };

export function appForm(
  request: ConsoleRequest,
  action: string,
  values: AppForm,
  names: { states: string[]; groups: string[] },
  errors: Map<string, string>,
  mode: AppFormMode,
): Html {
  const creating = mode.creating;
  const error = (field: string) => errors.get(field);
  // The first field at fault, in the form's order, takes the focus; the others are only marked.
  const focused = FORM_FIELDS.find((field) => errors.has(field) && (creating || field !== 'client_type'));
  const opt = (field: string) => {
    const message = error(field);
    return message === undefined ? {} : { error: message, ...(field === focused ? { autofocus: true } : {}) };
  };
  // With no field of the form at fault (the application changed meanwhile), the alert takes the focus.
  const alertFocus = { focus: focused === undefined };
  return html`${
      errors.has('')
        ? formAlert(errors.get('')!, { id: 'form-error', ...alertFocus })
        : errors.size > 0
          ? formAlert('Some fields need attention; each says what is wrong.', alertFocus)
          : ''
    }
    ${mode.creating ? '' : (mode.differences ?? '')}
    <form method="post" action="${action}" novalidate>
      ${csrfField(request.session)}
      ${
        // A new application's client_id, chosen when the form is shown: sent twice, the form creates
        // one application, the second send finding its client_id taken. An edit form's version: the
        // edit is refused when the application changed since (another operator's change would be
        // undone by the values shown before it).
        mode.creating
          ? html`<input type="hidden" name="client_id" value="${mode.newClientId}" />`
          : html`<input type="hidden" name="version" value="${String(mode.version)}" />`
      }
      ${textField('Name', 'name', values.name, {
        required: true,
        maxlength: 100,
        ...(creating || sentBackUntouched(values.name) === values.name
          ? {}
          : {
              hint: 'It holds a character this page cannot show, shown as \uFFFD: left as it is, the name is kept as stored.',
            }),
        ...opt('name'),
      })}
      ${textField('Logo URL', 'logo_url', values.logoUrl, {
        type: 'url',
        hint: 'Shown on the consent page; https only.',
        ...opt('logo_url'),
      })}
      ${linesField('Redirect URIs', 'redirect_uris', values.redirectUris, {
        hint: 'One per line; matched exactly (at a native app, an http://127.0.0.1 or http://[::1] one at any port).',
        ...opt('redirect_uris'),
      })}
      ${linesField('Post-logout redirect URIs', 'post_logout_redirect_uris', values.postLogoutRedirectUris, {
        hint: 'One per line; matched as redirect URIs are.',
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
      <fieldset ${error('grant_types') ? html`aria-invalid="true" aria-describedby="grant_types-error"` : ''}>
        <legend>Grant types</legend>
        ${GRANT_TYPES.map((grant, index) => checkbox(GRANT_LABELS[grant], 'grant_types', values.grantTypes.includes(grant), { value: grant, ...(index === 0 && focused === 'grant_types' ? { autofocus: true } : {}) }))}
        ${error('grant_types') ? html`<p class="field-error" id="grant_types-error">${error('grant_types')}</p>` : ''}
      </fieldset>
      ${checkboxGroup('States allowed', 'states', names.states, values.states, {
        hint: 'With no state and no group ticked, everyone past the global gate may use it.',
        empty: 'No states exist yet.',
        missing: 'no longer in the directory',
        ...opt('states'),
      })}
      ${checkboxGroup('Groups allowed', 'groups', names.groups, values.groups, {
        empty: 'No groups exist yet.',
        missing: 'no longer in the directory',
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
        ${checkbox('Require PKCE', 'pkce_required', values.pkceRequired, opt('pkce_required'))}
        ${checkbox('Skip the consent page', 'skip_authorization', values.skipAuthorization)}
        ${checkbox('Back-channel logout only when tokens are revoked', 'backchannel_logout_on_revoke_only', values.backchannelLogoutOnRevokeOnly)}
        ${checkbox('Put the granted scopes’ claims (email, groups, username, …) in the ID token, for apps that read them only there', 'id_token_claims', values.idTokenClaims)}
        ${checkbox('Debug logging (verbose, still redacted)', 'debug_mode', values.debugMode)}
        ${error('pkce_required') ? html`<p class="field-error" id="pkce_required-error">${error('pkce_required')}</p>` : ''}
      </fieldset>
      <div class="actions">
        <button type="submit">${creating ? 'Create application' : 'Save changes'}</button>
        <a href="${creating ? '/admin/apps' : action.replace(/\/edit$/, '')}">Cancel</a>
      </div>
    </form>`;
}

/** The secret, once: in a read-only field (selectable without JavaScript) with a copy button. */
export function secretOnce(clientId: string, secret: string): Html {
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
    <button type="button" class="secondary" data-copy="client-secret" hidden>Copy secret</button>`;
}

export async function liveTokenImpact(
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

export function testResults(results: Awaited<ReturnType<AdminDependencies['logout']['testDelivery']>>): Html {
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

/** Finds the application a route names; answers 404 (and returns undefined) when there is none. */
export function applicationLoader(
  deps: AdminDependencies,
): (request: ConsoleRequest) => Promise<Application | undefined> {
  return async (request) => {
    const app = await deps.applications.findByClientId(request.params.clientId ?? '');
    if (!app) noSuchApplication(request);
    return app;
  };
}

/**
 * The 404 page for an application that is not (or no longer) there: also the answer to a form sent
 * for an application deleted meanwhile (by the CLI or another administrator), which changed nothing.
 */
export function noSuchApplication(request: ConsoleRequest): void {
  renderAdmin(
    request,
    '/admin/apps',
    'No such application',
    html`<h1>No such application</h1>
      <p class="alert" role="alert">
        No application has this client_id: it does not exist, or it was deleted (perhaps from the command line
        or by another administrator). Nothing was changed.
      </p>
      <p><a href="/admin/apps">All applications</a></p>`,
    { status: 404 },
  );
}
