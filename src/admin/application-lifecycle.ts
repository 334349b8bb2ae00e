import { ApplicationError } from '../applications/errors.ts';
import {
  IMPORTED_SECRET_MAX_ITERATIONS,
  importedSecretHash,
  secretFingerprint,
} from '../applications/secret.ts';
import { type Application } from '../applications/types.ts';
import { isShownLogoUrl } from '../applications/validate.ts';
import type { Consequence } from '../db/unit-of-work.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { csrfField, doneMessage, formAlert, formatTime, postButton } from '../console/ui.ts';
import { type Html, html } from '../http/pages/layout.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';
import {
  appPath,
  DONE,
  FORMAT_LABELS,
  liveTokenImpact,
  noSuchApplication,
  secretOnce,
  yesNo,
} from './application-parts.ts';

/**
 * One application's page, and what changes its life: rotating the secret, deactivating and
 * activating (each confirmed after its impact on live tokens is shown).
 */

export function showRoute(
  deps: AdminDependencies,
  load: (request: ConsoleRequest) => Promise<Application | undefined>,
): ConsoleRoute[] {
  return [
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
          html`${isShownLogoUrl(app.logoUrl) ? html`<img class="logo" src="${app.logoUrl}" alt="${app.name} logo" />` : ''}
            <h1>${app.name}</h1>
            ${doneMessage(DONE, request.ctx.query.done)}
            <dl class="facts">
              ${
                app.logoUrl !== null && !isShownLogoUrl(app.logoUrl)
                  ? html`<dt>Logo URL</dt>
                      <dd>
                        <code>${app.logoUrl}</code>: <strong>not shown</strong>, as the pages load images over
                        https only; <a href="${appPath(app.clientId, '/edit')}">give an https URL</a>.
                      </dd>`
                  : ''
              }
              <dt>client_id</dt>
              <dd><code>${app.clientId}</code></dd>
              <dt>Status</dt>
              <dd>${app.active ? 'active' : html`<strong>inactive</strong> (can do nothing)`}</dd>
              <dt>Client type</dt>
              <dd>${app.clientType}</dd>
              ${
                app.clientType === 'confidential'
                  ? html`<dt>Client secret</dt>
                      <dd>${secretFact(app)}</dd>`
                  : ''
              }
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
              <dt>Claims in the ID token</dt>
              <dd>
                ${app.idTokenClaims ? 'the granted scopes’ claims' : 'protocol claims only (the rest from userinfo)'}
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
  ];
}

/** How the secret is held: aa-oidc's digest, or (never shown) the hash imported from the Python plugin. */
function secretFact(app: Application): Html | string {
  const imported = importedSecretHash(app);
  if (imported === null) return 'stored as a SHA-256 digest';
  const rotate = html`<a href="${appPath(app.clientId, '/rotate-secret')}">Rotate it</a>`;
  if (!imported.checked)
    return html`<strong>a hash imported from the Python plugin that aa-oidc never checks</strong>
      (${imported.iterations === null ? 'unreadable' : `${imported.iterations} PBKDF2 iterations, more than ${IMPORTED_SECRET_MAX_ITERATIONS}`}):
      it authenticates nobody. ${rotate} and give the relying party the new secret.`;
  return html`<strong>still the PBKDF2 hash imported from the Python plugin</strong> (${imported.iterations}
    iterations): each authentication costs a PBKDF2 run until the relying party’s first success replaces it.
    ${rotate} to end it now.`;
}

export function lifecycleRoutes(
  deps: AdminDependencies,
  load: (request: ConsoleRequest) => Promise<Application | undefined>,
): ConsoleRoute[] {
  return [
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
                ? formAlert(refusal)
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
                    ${rotateForm(request, app, 'Rotate the secret')}`
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
        // The secret the confirmation page was shown for: a second send of that form, or one from a page
        // shown before another rotation, is refused instead of handing out a secret already replaced.
        const seen = request.form.get(SECRET_FINGERPRINT_FIELD) ?? '';
        if (seen === '' && app.clientType === 'confidential')
          return renderAdmin(
            request,
            '/admin/apps',
            'Secret not rotated',
            html`<h1>Secret not rotated</h1>
              ${formAlert('The form did not say which secret it was shown for, so nothing was rotated. Open “Rotate secret” on the application’s page and confirm there.')}
              <p>
                <a href="${appPath(app.clientId, '/rotate-secret')}">Rotate the secret of ${app.name}…</a>
              </p>`,
            { status: 400 },
          );
        try {
          const { clientSecret } = await deps.applications.rotateSecret(app.clientId, adminActor(request), {
            ...(seen === '' ? {} : { expectedFingerprint: seen }),
          });
          renderAdmin(
            request,
            '/admin/apps',
            'New client secret',
            html`<h1>New secret for ${app.name}</h1>
              ${clientSecret ? secretOnce(app.clientId, clientSecret) : ''}
              <p><a href="${appPath(app.clientId)}">Back to the application</a></p>`,
          );
        } catch (error) {
          if (!(error instanceof ApplicationError)) throw error;
          // Deleted between loading it above and rotating.
          if (error.code === 'not_found') return noSuchApplication(request);
          if (error.code === 'conflict') return alreadyRotated(request, deps, app.clientId);
          renderAdmin(
            request,
            '/admin/apps',
            'Secret not rotated',
            html`<h1>Secret not rotated</h1>
              ${formAlert(error.message)}`,
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
        let preview: Awaited<ReturnType<AdminDependencies['applications']['deactivate']>>;
        try {
          preview = await deps.applications.deactivate(app.clientId, adminActor(request), { dryRun: true });
        } catch (error) {
          if (!(error instanceof ApplicationError) || error.code !== 'not_found') throw error;
          return noSuchApplication(request);
        }
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
        try {
          await deps.applications.deactivate(app.clientId, adminActor(request));
        } catch (error) {
          return notSwitched(request, app, 'deactivated', error);
        }
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
        const consequences: Consequence[] = [];
        try {
          await deps.applications.activate(app.clientId, adminActor(request), { consequences });
        } catch (error) {
          return notSwitched(request, app, 'activated', error);
        }
        const ended = consequences.some((consequence) => consequence.kind === 'access_lost');
        request.seeOther(`${appPath(app.clientId)}?done=${ended ? 'activated_access_ended' : 'activated'}`);
      },
    },
  ];
}

const SECRET_FINGERPRINT_FIELD = 'secret_fingerprint';

/** The confirmation form of a rotation: it names the secret it was shown for (its fingerprint). */
function rotateForm(request: ConsoleRequest, app: Application, label: string): Html {
  return html`<form method="post" action="${appPath(app.clientId, '/rotate-secret')}">
    ${csrfField(request.session)}
    <input type="hidden" name="${SECRET_FINGERPRINT_FIELD}" value="${secretFingerprint(app) ?? ''}" />
    <div class="actions">
      <button type="submit" class="danger">${label}</button>
      <a href="${appPath(app.clientId)}">Cancel</a>
    </div>
  </form>`;
}

/**
 * A rotation refused because the secret changed after its confirmation page was shown (the form sent
 * twice, or another rotation meanwhile): no secret is shown, since only the one shown by that other
 * rotation works; rotating again is offered, for the secret stored now.
 */
async function alreadyRotated(
  request: ConsoleRequest,
  deps: AdminDependencies,
  clientId: string,
): Promise<void> {
  const app = await deps.applications.findByClientId(clientId);
  if (!app) return noSuchApplication(request);
  renderAdmin(
    request,
    '/admin/apps',
    'Secret already rotated',
    html`<h1>The secret of ${app.name} was already rotated</h1>
      ${formAlert(`Nothing was rotated: the secret was changed after the page this came from was shown (the form was sent twice, or someone rotated it meanwhile); the application was last changed at ${formatTime(app.updatedAt)}. The secret shown by that rotation is the live one.`)}
      <p>If nobody copied that secret, rotate again: the one shown then will be the live one.</p>
      ${rotateForm(request, app, 'Rotate again')}`,
    { status: 409 },
  );
}

/**
 * An activation or deactivation the service refused (another operator changed the application
 * meanwhile): said on a page of its own, nothing written. Anything else is thrown on.
 */
function notSwitched(
  request: ConsoleRequest,
  app: Application,
  verb: 'activated' | 'deactivated',
  error: unknown,
): void {
  if (!(error instanceof ApplicationError)) throw error;
  // Deleted between loading it and switching it.
  if (error.code === 'not_found') return noSuchApplication(request);
  renderAdmin(
    request,
    '/admin/apps',
    `Not ${verb}`,
    html`<h1>${app.name} was not ${verb}</h1>
      ${formAlert(error.message)}
      <p><a href="${appPath(app.clientId)}">Back to the application</a></p>`,
    { status: error.code === 'conflict' ? 409 : 400 },
  );
}
