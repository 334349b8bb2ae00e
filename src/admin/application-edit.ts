import { ApplicationError, quote } from '../applications/errors.ts';
import { generateClientId } from '../applications/secret.ts';
import { type Application, type ClientType } from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import type { Consequence } from '../db/unit-of-work.ts';
import { formAlert, formatTime } from '../console/ui.ts';
import { html, sentBackUntouched } from '../http/pages/layout.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';
import {
  APP_FORM_LISTS,
  type AppForm,
  appForm,
  appPath,
  directoryNames,
  errorsByField,
  formDifferences,
  formOf,
  inputOf,
  NEW_APP,
  noSuchApplication,
  readForm,
  secretOnce,
} from './application-parts.ts';

/** Creating an application (its secret shown once) and editing one, through the applications service. */

export function createRoutes(deps: AdminDependencies): ConsoleRoute[] {
  return [
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
            ${appForm(request, '/admin/apps/new', NEW_APP, await directoryNames(deps), new Map(), { creating: true, newClientId: generateClientId() })}`,
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/new',
      access: 'superuser',
      multiValued: APP_FORM_LISTS,
      async handle(request) {
        const values = readForm(request.form);
        // Chosen when the form was shown: the form without it was not the console's (or is from an
        // older version of the page); a new one is given, and nothing is created yet.
        const clientId = request.form.get('client_id') ?? '';
        if (clientId === '')
          return renderAdmin(
            request,
            '/admin/apps',
            'New application',
            html`<h1>New application</h1>
              ${appForm(request, '/admin/apps/new', values, await directoryNames(deps), new Map([['', 'Nothing was created: the form did not carry the client_id it was shown with. Check the fields and send it again.']]), { creating: true, newClientId: generateClientId() })}`,
            { status: 400 },
          );
        try {
          const created = await deps.applications.create(
            // The type as sent: the service refuses one that is neither confidential nor public.
            { ...inputOf(values), clientId, clientType: values.clientType as ClientType },
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
          const existing =
            error.code === 'conflict' ? await deps.applications.findByClientId(clientId) : undefined;
          // The form was sent before (twice at once, or sent again) and its first send created it: the
          // client_id is chosen at random for each form shown, so only that send made it under this
          // actor (any other holder means a client_id typed into the request: said at its field).
          if (existing?.createdBy === adminActor(request)) {
            renderAdmin(
              request,
              '/admin/apps',
              'Already created',
              html`<h1>Application ${existing.name} was already created from this form</h1>
                ${formAlert(`Nothing new was created: this form was already sent, and created ${existing.name} at ${formatTime(existing.createdAt)}${existing.createdBy ? ` (by ${existing.createdBy})` : ''}. Its secret was shown once, on the page that answered that first send; if nobody copied it, rotate the secret.`)}
                <p>
                  <a href="${appPath(existing.clientId)}">Go to the application</a> ·
                  <a href="/admin/apps/new">Create another application</a>
                </p>`,
              { status: 409 },
            );
            return;
          }
          // Any other holder of the client_id (or of one differing only in case): the service's advice
          // to choose another or omit it is the command line's, where the operator types it. Here the
          // form chose it: the form is given a new one, as after any refusal at the client_id.
          const clientIdRefused = error.issues.some((issue) => issue.field === 'client_id');
          const errors =
            error.code === 'conflict'
              ? new Map([
                  [
                    '',
                    `Nothing was created: the client_id this form was shown with, ${quote(clientId)}, is already another application's, or differs from one only in case. The form now carries a new client_id: send it again.`,
                  ],
                ])
              : errorsByField(error);
          renderAdmin(
            request,
            '/admin/apps',
            'New application',
            html`<h1>New application</h1>
              ${appForm(request, '/admin/apps/new', values, await directoryNames(deps), errors, { creating: true, newClientId: clientIdRefused ? generateClientId() : clientId })}`,
            { status: error.code === 'conflict' ? 409 : 400 },
          );
        }
      },
    },
  ];
}

export function editRoutes(
  deps: AdminDependencies,
  load: (request: ConsoleRequest) => Promise<Application | undefined>,
): ConsoleRoute[] {
  return [
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
            ${appForm(request, appPath(app.clientId, '/edit'), formOf(app), await directoryNames(deps), new Map(), { creating: false, version: app.updatedAt })}`,
        );
      },
    },
    {
      method: 'POST',
      path: '/admin/apps/:clientId/edit',
      access: 'superuser',
      multiValued: APP_FORM_LISTS,
      async handle(request) {
        const app = await load(request);
        if (!app) return;
        const values = readForm(request.form);
        // The field shows a character the page cannot hold (a control character) as U+FFFD: sent
        // back as shown, the name was not touched, and the stored one is kept as it is.
        if (values.name !== app.name && values.name === sentBackUntouched(app.name).trim())
          values.name = app.name;
        const version = formVersion(request.form.get('version'));
        if (version === undefined)
          return showStored(
            request,
            deps,
            app,
            values,
            'Nothing was saved: the form did not say which version of the application it was opened on (it is not this console’s form, or from an older version of the page).',
            400,
          );
        try {
          const consequences: Consequence[] = [];
          const result = await deps.applications.update(app.clientId, inputOf(values), adminActor(request), {
            consequences,
            expectedVersion: version,
          });
          const ended = consequences.some((consequence) => consequence.kind === 'access_lost');
          request.seeOther(
            `${appPath(app.clientId)}?done=${result.changedFields.length === 0 ? 'unchanged' : ended ? 'updated_access_ended' : 'updated'}`,
          );
        } catch (error) {
          if (!(error instanceof ApplicationError)) throw error;
          // Deleted between loading it above and writing.
          if (error.code === 'not_found') return noSuchApplication(request);
          if (error.code === 'conflict') {
            // Changed since the form was opened, or while this send was handled: the form's values
            // would undo that change (a state taken out of the whitelists put back), so nothing is
            // written, and the form is shown again with the application as it is now.
            const latest = await deps.applications.findByClientId(app.clientId);
            if (!latest) return noSuchApplication(request);
            return showStored(
              request,
              deps,
              latest,
              values,
              `Nothing was saved: this application was changed since this form was opened (last changed at ${formatTime(latest.updatedAt)}: by another administrator, the command line, or this form sent before).`,
              409,
            );
          }
          renderAdmin(
            request,
            '/admin/apps',
            `Edit ${app.name}`,
            html`<h1>Edit ${app.name}</h1>
              ${appForm(request, appPath(app.clientId, '/edit'), { ...values, clientType: app.clientType }, await directoryNames(deps), errorsByField(error), { creating: false, version })}`,
            { status: 400 },
          );
        }
      },
    },
  ];
}

/** The version an edit form carries (`updatedAt`, epoch milliseconds); undefined when it is none. */
function formVersion(text: string | null): number | undefined {
  if (text === null || !/^\d{1,16}$/.test(text)) return undefined;
  const version = Number(text);
  return Number.isSafeInteger(version) ? version : undefined;
}

/**
 * A refused edit, shown with the application as it is stored now (and its version, so that the form
 * saves once sent again) and, under `why`, each value the form sent that differs from it: what the
 * operator changed, and what changed meanwhile, to be set again where still wanted.
 */
async function showStored(
  request: ConsoleRequest,
  deps: AdminDependencies,
  stored: Application,
  sent: AppForm,
  why: string,
  status: 400 | 409,
): Promise<void> {
  const differences = formDifferences(sent, formOf(stored));
  const advice =
    differences.length === 0
      ? 'It already holds every value this form sent: there is nothing left to save.'
      : 'The form now shows it as it is; the values this form sent that differ from it are listed below. Make again the changes you still want, and save.';
  renderAdmin(
    request,
    '/admin/apps',
    `Edit ${stored.name}`,
    html`<h1>Edit ${stored.name}</h1>
      ${appForm(
        request,
        appPath(stored.clientId, '/edit'),
        formOf(stored),
        await directoryNames(deps),
        new Map([['', `${why} ${advice}`]]),
        {
          creating: false,
          version: stored.updatedAt,
          ...(differences.length > 0 && {
            differences: html`<div class="warn">
              <p><strong>What this form sent that differs from the application as it is now:</strong></p>
              <ul>
                ${differences.map(
                  ({ label, now, sent: yours }) =>
                    html`<li>
                      <strong>${label}</strong> now: <code>${now}</code>; this form: <code>${yours}</code>
                    </li>`,
                )}
              </ul>
            </div>`,
          }),
        },
      )}`,
    { status },
  );
}
