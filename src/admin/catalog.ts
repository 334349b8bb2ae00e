import type { Application } from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { checkbox, csrfField, doneMessage, queryText, textField } from '../console/ui.ts';
import type { Consequence } from '../db/unit-of-work.ts';
import type { ChangeOptions } from '../directory/builtin/types.ts';
import { DirectoryError } from '../directory/errors.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { type AdminDependencies, adminActor, renderAdmin } from './context.ts';
import { allianceAuthNote, applicationsById, impactList, readOnly } from './users.ts';

/**
 * States and groups in the admin UI: the list with what each grants and how many hold it, create,
 * rename, a state's priority, the OIDC access it grants, and delete. Every change but a creation is
 * confirmed after its dry run (as the CLI's `--dry-run`) shows what it does: the users who lose an
 * application and the back-channel logouts, the whitelists that follow a rename, or why it is
 * refused. Writes go through the built-in directory's admin interface, as for the CLI.
 */

type Entity = 'state' | 'group';

interface CatalogEntry {
  name: string;
  priority: number | null;
  oidcAccess: boolean;
  /** Null when the directory does not count them (Alliance Auth). */
  holders: number | null;
}

const BASE: Readonly<Record<Entity, '/admin/states' | '/admin/groups'>> = {
  state: '/admin/states',
  group: '/admin/groups',
};

const DONE: Readonly<Record<string, string>> = {
  created: 'Created.',
  rename: 'Renamed; application whitelists follow.',
  priority: 'Priority changed.',
  access: 'OIDC access changed.',
  delete: 'Deleted.',
  unchanged: 'Nothing changed.',
};

function entryPath(entity: Entity, name: string, suffix = ''): string {
  return `${BASE[entity]}/${encodeURIComponent(name)}${suffix}`;
}

/** The applications whose whitelist names `name` (regardless of case). */
function whitelisting(apps: Iterable<Application>, entity: Entity, name: string): Application[] {
  const key = name.toLowerCase();
  return [...apps].filter((app) =>
    (entity === 'state' ? app.states : app.groups).some((listed) => listed.toLowerCase() === key),
  );
}

interface CatalogAction {
  slug: 'rename' | 'priority' | 'access' | 'delete';
  entities: readonly Entity[];
  title(entity: Entity, name: string, input: URLSearchParams): string;
  button: string;
  /** The fields carried from the query into the confirmation form. */
  carry: readonly string[];
  run(
    entity: Entity,
    name: string,
    input: URLSearchParams,
    options: ChangeOptions,
  ): Promise<{ changed: boolean; target: string | null }>;
  /** What the change does beyond what its consumers report. */
  notes?(entity: Entity, name: string, input: URLSearchParams, apps: ReadonlyMap<string, Application>): Html;
}

export function catalogRoutes(deps: AdminDependencies): ConsoleRoute[] {
  const admin = deps.directoryAdmin;

  const entries = async (entity: Entity): Promise<CatalogEntry[]> => {
    if (readOnly(deps)) {
      if (entity === 'state')
        return (await deps.directory.listStates()).map((state) => ({
          name: state.name,
          priority: state.priority,
          oidcAccess: state.oidcAccess,
          holders: null,
        }));
      return (await deps.directory.listGroups()).map((group) => ({
        name: group.name,
        priority: null,
        oidcAccess: group.oidcAccess,
        holders: null,
      }));
    }
    if (entity === 'state')
      return (await admin.listStates()).map((state) => ({
        name: state.name,
        priority: state.priority,
        oidcAccess: state.oidc_access === 1,
        holders: state.userCount,
      }));
    return (await admin.listGroups()).map((group) => ({
      name: group.name,
      priority: null,
      oidcAccess: group.oidc_access === 1,
      holders: group.userCount,
    }));
  };

  const findEntry = async (entity: Entity, name: string) =>
    (await entries(entity)).find((entry) => entry.name === name);

  const priorityOf = (input: URLSearchParams): number => {
    const text = (input.get('priority') ?? '').trim();
    // The directory names what is wrong with anything but a whole number.
    return /^-?\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  };

  const actions: CatalogAction[] = [
    {
      slug: 'rename',
      entities: ['state', 'group'],
      title: (entity, name, input) => `Rename ${entity} ${name} to ${input.get('to') ?? ''}?`,
      button: 'Rename',
      carry: ['to'],
      async run(entity, name, input, options) {
        const to = (input.get('to') ?? '').trim();
        if (entity === 'state') {
          const result = await admin.renameState(name, to, options);
          return { changed: result.changed, target: result.state.name };
        }
        const result = await admin.renameGroup(name, to, options);
        return { changed: result.changed, target: result.group.name };
      },
      notes(entity, name, _input, apps) {
        const following = whitelisting(apps.values(), entity, name);
        return html`<li>
          ${
            following.length > 0
              ? html`The whitelists of
                ${following.map((app, index) => html`${index > 0 ? ', ' : ''}${app.name}`)} follow the new
                name.`
              : 'No application whitelists it.'
          }
          Users keep their ${entity === 'state' ? 'state' : 'memberships'}.
        </li>`;
      },
    },
    {
      slug: 'priority',
      entities: ['state'],
      title: (_entity, name, input) => `Give state ${name} priority ${input.get('priority') ?? ''}?`,
      button: 'Change the priority',
      carry: ['priority'],
      async run(_entity, name, input, options) {
        const result = await admin.setStatePriority(name, priorityOf(input), options);
        return { changed: result.changed, target: result.state.name };
      },
      notes: () => html`<li>Priorities order the states; they grant nothing.</li>`,
    },
    {
      slug: 'access',
      entities: ['state', 'group'],
      title: (entity, name, input) =>
        input.get('oidc_access') === 'yes'
          ? `Grant OIDC access to everyone in ${entity} ${name}?`
          : `Stop granting OIDC access through ${entity} ${name}?`,
      button: 'Change OIDC access',
      carry: ['oidc_access'],
      async run(entity, name, input, options) {
        const access = input.get('oidc_access') === 'yes';
        const result =
          entity === 'state'
            ? await admin.grantStateAccess(name, access, options)
            : await admin.grantGroupAccess(name, access, options);
        return { changed: result.changed, target: name };
      },
    },
    {
      slug: 'delete',
      entities: ['state', 'group'],
      title: (entity, name) => `Delete ${entity} ${name}?`,
      button: 'Delete',
      carry: [],
      async run(entity, name, _input, options) {
        if (entity === 'state') await admin.deleteState(name, options);
        else await admin.deleteGroup(name, options);
        return { changed: true, target: null };
      },
    },
  ];

  const notFound = (request: ConsoleRequest, entity: Entity) =>
    renderAdmin(
      request,
      BASE[entity],
      `No such ${entity}`,
      html`<h1>No such ${entity}</h1>
        <p class="alert" role="alert">No ${entity} has this name.</p>
        <p><a href="${BASE[entity]}">All ${entity}s</a></p>`,
      { status: 404 },
    );

  const actionPage = async (
    request: ConsoleRequest,
    entity: Entity,
    action: CatalogAction,
    name: string,
    input: URLSearchParams,
    problem?: { message: string; status: number },
  ) => {
    if (readOnly(deps)) {
      renderAdmin(
        request,
        BASE[entity],
        'Read-only',
        html`<h1>Read-only</h1>
          ${allianceAuthNote(deps)}`,
        { status: 409 },
      );
      return;
    }
    const apps = await applicationsById(deps);
    let preview: Html;
    let possible = true;
    try {
      const consequences: Consequence[] = [];
      const dryRun = await action.run(entity, name, input, {
        actor: adminActor(request),
        dryRun: true,
        consequences,
      });
      preview = dryRun.changed
        ? html`<div class="warn">
            <p><strong>What happens:</strong></p>
            ${impactList(consequences, apps, 'Users')}
            ${
              action.notes
                ? html`<ul>
                    ${action.notes(entity, name, input, apps)}
                  </ul>`
                : ''
            }
          </div>`
        : html`<p class="note">Nothing would change.</p>`;
    } catch (error) {
      if (!(error instanceof DirectoryError)) throw error;
      possible = false;
      preview = html`<p class="alert" role="alert">Not possible: ${error.message}</p>`;
    }
    renderAdmin(
      request,
      BASE[entity],
      action.title(entity, name, input),
      html`<h1>${action.title(entity, name, input)}</h1>
        ${problem ? html`<p class="alert" role="alert">${problem.message}</p>` : ''} ${preview}
        ${
          possible
            ? html`<form method="post" action="${entryPath(entity, name, `/${action.slug}`)}">
                ${csrfField(request.session)}
                ${action.carry.map(
                  (field) => html`<input type="hidden" name="${field}" value="${input.get(field) ?? ''}" />`,
                )}
                <div class="actions">
                  <button type="submit" class="danger">${action.button}</button>
                  <a href="${entryPath(entity, name)}">Cancel</a>
                </div>
              </form>`
            : html`<p><a href="${entryPath(entity, name)}">Back</a></p>`
        }`,
      { status: problem?.status ?? (possible ? 200 : 409) },
    );
  };

  const listPage = async (
    request: ConsoleRequest,
    entity: Entity,
    form?: { values: URLSearchParams; error: string; status: number },
  ) => {
    const listed = await entries(entity);
    const title = entity === 'state' ? 'States' : 'Groups';
    renderAdmin(
      request,
      BASE[entity],
      title,
      html`<h1>${title}</h1>
        ${doneMessage(DONE, request.ctx.query.done)} ${readOnly(deps) ? allianceAuthNote(deps) : ''}
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
                  ${form ? html`<p class="alert" role="alert">${form.error}</p>` : ''}
                  ${textField('Name', 'name', form?.values.get('name') ?? '', { required: true, maxlength: 150 })}
                  ${
                    entity === 'state'
                      ? textField('Priority', 'priority', form?.values.get('priority') ?? '', {
                          type: 'number',
                          required: true,
                          hint: 'Unique; higher ranks first.',
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
        if (readOnly(deps)) return listPage(request, entity);
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
            status: error.code === 'conflict' ? 409 : 400,
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
        const name = request.params.name ?? '';
        const entry = await findEntry(entity, name);
        if (!entry) return notFound(request, entity);
        const apps = whitelisting((await applicationsById(deps)).values(), entity, name);
        const members = `/admin/users?${new URLSearchParams({ [entity]: name }).toString()}`;
        renderAdmin(
          request,
          BASE[entity],
          `${entity === 'state' ? 'State' : 'Group'} ${name}`,
          html`<h1>${entity === 'state' ? 'State' : 'Group'} ${name}</h1>
            ${doneMessage(DONE, request.ctx.query.done)} ${readOnly(deps) ? allianceAuthNote(deps) : ''}
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
                      ${textField('New name', 'to', name, { required: true, maxlength: 150 })}
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
    ...actions
      .filter((action) => action.entities.includes(entity))
      .flatMap((action): ConsoleRoute[] => [
        {
          method: 'GET',
          path: `${BASE[entity]}/:name/${action.slug}`,
          access: 'superuser',
          async handle(request) {
            const name = request.params.name ?? '';
            if (!(await findEntry(entity, name))) return notFound(request, entity);
            const input = new URLSearchParams();
            for (const field of action.carry) input.set(field, queryText(request.ctx.query, field, 200));
            await actionPage(request, entity, action, name, input);
          },
        },
        {
          method: 'POST',
          path: `${BASE[entity]}/:name/${action.slug}`,
          access: 'superuser',
          async handle(request) {
            const name = request.params.name ?? '';
            if (!(await findEntry(entity, name))) return notFound(request, entity);
            if (readOnly(deps)) return actionPage(request, entity, action, name, request.form);
            try {
              const result = await action.run(entity, name, request.form, { actor: adminActor(request) });
              const done = result.changed ? action.slug : 'unchanged';
              request.seeOther(
                result.target === null
                  ? `${BASE[entity]}?done=${done}`
                  : `${entryPath(entity, result.target)}?done=${done}`,
              );
            } catch (error) {
              if (!(error instanceof DirectoryError)) throw error;
              await actionPage(request, entity, action, name, request.form, {
                message: error.message,
                status: error.code === 'conflict' ? 409 : 400,
              });
            }
          },
        },
      ]),
  ]);
}
