import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { checkbox, csrfField, doneMessage, textField } from '../console/ui.ts';
import { NAME_FIELD_MAXLENGTH, PRIORITY_MAX, PRIORITY_MIN } from '../directory/builtin/validation.ts';
import { DirectoryError } from '../directory/errors.ts';
import { html } from '../http/pages/layout.ts';
import { catalogActionRoutes } from './catalog-actions.ts';
import {
  BASE,
  CATALOG_DONE,
  catalogEntries,
  catalogNotFound,
  type Entity,
  entryPath,
  findCatalogEntry,
  priorityOf,
  sentToStoredSpelling,
  whitelisting,
} from './catalog-parts.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';
import {
  allianceAuthNote,
  applicationsById,
  readOnly,
  readOnlyRefusal,
  refusalStatus,
} from './directory-parts.ts';

/**
 * States and groups in the admin UI: the list with what each grants and how many hold it, create,
 * and one state's or group's page; its changes (rename, priority, OIDC access, delete) are in
 * `catalog-actions.ts`. Writes go through the built-in directory's admin interface, as for the CLI.
 */

export function catalogRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const listPage = async (
    request: ConsoleRequest,
    entity: Entity,
    form?: { values: URLSearchParams; error: string; status: number },
  ) => {
    // The refusal at the field it is about: the directory's messages about a priority start so.
    const priorityRefused = form !== undefined && /^(invalid state priority|priority )/.test(form.error);
    const fieldError = (field: 'name' | 'priority') =>
      form && (field === 'priority') === priorityRefused ? { error: form.error, autofocus: true } : {};
    const listed = await catalogEntries(deps, entity);
    const title = entity === 'state' ? 'States' : 'Groups';
    renderAdmin(
      request,
      BASE[entity],
      title,
      html`<h1>${title}</h1>
        ${doneMessage(CATALOG_DONE, request.ctx.query.done)} ${readOnly(deps) ? allianceAuthNote(deps) : ''}
        <div class="table-wrap">
          <table>
            <caption>
              ${listed.length} ${entity}(s)${entity === 'state' ? ', highest priority first' : ''}
            </caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                ${entity === 'state' ? html`<th scope="col">Priority</th>` : ''}
                <th scope="col">Grants OIDC access</th>
                <th scope="col">${entity === 'state' ? 'Users' : 'Members'}</th>
              </tr>
            </thead>
            <tbody>
              ${listed.map(
                (entry) =>
                  html`<tr>
                    <td><a href="${entryPath(entity, entry.name)}">${entry.name}</a></td>
                    ${entity === 'state' ? html`<td>${entry.priority ?? '—'}</td>` : ''}
                    <td>${entry.oidcAccess ? 'yes' : 'no'}</td>
                    <td>${entry.holders ?? '—'}</td>
                  </tr>`,
              )}
            </tbody>
          </table>
        </div>
        ${
          readOnly(deps)
            ? ''
            : html`<h2>New ${entity}</h2>
                <form method="post" action="${BASE[entity]}">
                  ${csrfField(request.session)}
                  ${
                    form
                      ? html`<p class="alert" role="alert">
                          Not created: correct the ${priorityRefused ? 'priority' : 'name'} below.
                        </p>`
                      : ''
                  }
                  ${textField('Name', 'name', form?.values.get('name') ?? '', {
                    required: true,
                    maxlength: NAME_FIELD_MAXLENGTH,
                    ...fieldError('name'),
                  })}
                  ${
                    entity === 'state'
                      ? textField('Priority', 'priority', form?.values.get('priority') ?? '', {
                          type: 'number',
                          required: true,
                          // The directory's range (a 32-bit integer), which the server checks again.
                          min: PRIORITY_MIN,
                          max: PRIORITY_MAX,
                          step: 1,
                          hint: 'Unique; higher ranks first.',
                          ...fieldError('priority'),
                        })
                      : ''
                  }
                  ${checkbox('Grants OIDC access', 'oidc_access', form?.values.has('oidc_access') ?? false)}
                  <div class="actions"><button type="submit">Create ${entity}</button></div>
                </form>`
        }`,
      { status: form?.status ?? 200 },
    );
  };

  return (['state', 'group'] as const).flatMap((entity): ConsoleRoute[] => [
    {
      method: 'GET',
      path: BASE[entity],
      access: 'superuser',
      handle: (request) => listPage(request, entity),
    },
    {
      method: 'POST',
      path: BASE[entity],
      access: 'superuser',
      async handle(request) {
        const admin = deps.directoryAdmin;
        if (!admin)
          return readOnlyRefusal(request, deps, BASE[entity], {
            href: BASE[entity],
            text: entity === 'state' ? 'States' : 'Groups',
          });
        const name = (request.form.get('name') ?? '').trim();
        const access = request.form.has('oidc_access');
        const options = { actor: adminActor(request) };
        try {
          if (entity === 'state') await admin.createState(name, priorityOf(request.form), access, options);
          else await admin.createGroup(name, access, options);
        } catch (error) {
          if (!(error instanceof DirectoryError)) throw error;
          return listPage(request, entity, {
            values: request.form,
            error: error.message,
            status: refusalStatus(error),
          });
        }
        request.seeOther(`${entryPath(entity, name)}?done=created`);
      },
    },
    {
      method: 'GET',
      path: `${BASE[entity]}/:name`,
      access: 'superuser',
      async handle(request) {
        const entry = await findCatalogEntry(deps, entity, request.params.name ?? '');
        if (!entry) return catalogNotFound(request, entity);
        if (sentToStoredSpelling(request, entity, entry)) return;
        const { name } = entry;
        const apps = whitelisting((await applicationsById(deps)).values(), entity, name);
        const members = `/admin/users?${new URLSearchParams({ [entity]: name }).toString()}`;
        renderAdmin(
          request,
          BASE[entity],
          `${entity === 'state' ? 'State' : 'Group'} ${name}`,
          html`<h1>${entity === 'state' ? 'State' : 'Group'} ${name}</h1>
            ${doneMessage(CATALOG_DONE, request.ctx.query.done)}
            ${readOnly(deps) ? allianceAuthNote(deps) : ''}
            <dl class="facts">
              ${
                entity === 'state'
                  ? html`<dt>Priority</dt>
                      <dd>${entry.priority ?? '—'}</dd>`
                  : ''
              }
              <dt>Grants OIDC access</dt>
              <dd>${entry.oidcAccess ? 'yes' : 'no'}</dd>
              <dt>${entity === 'state' ? 'Users' : 'Members'}</dt>
              <dd><a href="${members}">${entry.holders ?? 'list'}</a></dd>
              <dt>Whitelisted by</dt>
              <dd>
                ${
                  apps.length === 0
                    ? 'no application'
                    : apps.map(
                        (app, index) =>
                          html`${index > 0 ? ', ' : ''}<a
                              href="/admin/apps/${encodeURIComponent(app.clientId)}"
                              >${app.name}</a
                            >`,
                      )
                }
              </dd>
            </dl>
            ${
              readOnly(deps)
                ? ''
                : html`<h2>Change</h2>
                    <form method="get" action="${entryPath(entity, name, '/rename')}">
                      ${textField('New name', 'to', name, { required: true, maxlength: NAME_FIELD_MAXLENGTH })}
                      <div class="actions"><button type="submit" class="secondary">Rename…</button></div>
                    </form>
                    ${
                      entity === 'state'
                        ? html`<form method="get" action="${entryPath(entity, name, '/priority')}">
                            ${textField('Priority', 'priority', entry.priority, { type: 'number', required: true })}
                            <div class="actions">
                              <button type="submit" class="secondary">Change the priority…</button>
                            </div>
                          </form>`
                        : ''
                    }
                    <p class="actions">
                      <a
                        class="button secondary"
                        href="${entryPath(entity, name, `/access?oidc_access=${entry.oidcAccess ? 'no' : 'yes'}`)}"
                        >${entry.oidcAccess ? 'Stop granting OIDC access…' : 'Grant OIDC access…'}</a
                      >
                      <a class="button danger" href="${entryPath(entity, name, '/delete')}">Delete…</a>
                    </p>`
            }`,
        );
      },
    },
    ...catalogActionRoutes(deps, entity),
  ]);
}
