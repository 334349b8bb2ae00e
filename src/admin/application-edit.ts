import { ApplicationError } from '../applications/errors.ts';
import { type Application, type ClientType } from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import type { Consequence } from '../db/unit-of-work.ts';
import { html } from '../http/pages/layout.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';
import {
  appForm,
  appPath,
  directoryNames,
  errorsByField,
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
            // The type as sent: the service refuses one that is neither confidential nor public.
            { ...inputOf(values), clientType: values.clientType as ClientType },
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
          const consequences: Consequence[] = [];
          const result = await deps.applications.update(app.clientId, inputOf(values), adminActor(request), {
            consequences,
          });
          const ended = consequences.some((consequence) => consequence.kind === 'access_lost');
          request.seeOther(
            `${appPath(app.clientId)}?done=${result.changedFields.length === 0 ? 'unchanged' : ended ? 'updated_access_ended' : 'updated'}`,
          );
        } catch (error) {
          if (!(error instanceof ApplicationError)) throw error;
          // Deleted between loading it above and writing.
          if (error.code === 'not_found') return noSuchApplication(request);
          renderAdmin(
            request,
            '/admin/apps',
            `Edit ${app.name}`,
            html`<h1>Edit ${app.name}</h1>
              ${appForm(request, appPath(app.clientId, '/edit'), { ...values, clientType: app.clientType }, await directoryNames(deps), errorsByField(error), false)}`,
            { status: error.code === 'conflict' ? 409 : 400 },
          );
        }
      },
    },
  ];
}
