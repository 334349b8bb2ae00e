import type { Application } from '../applications/types.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { csrfField, formAlert, textField } from '../console/ui.ts';
import type { Consequence } from '../db/unit-of-work.ts';
import type { ChangeOptions } from '../directory/builtin/types.ts';
import { NAME_FIELD_MAXLENGTH, quote } from '../directory/builtin/validation.ts';
import { DirectoryError, invalid } from '../directory/errors.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { shownName } from '../util/visible-text.ts';
import {
  BASE,
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
  applicationsById,
  impactList,
  readOnly,
  readOnlyRefusal,
  refusalStatus,
  writableDirectory,
} from './directory-parts.ts';
import { carriedQuery } from './filter-parts.ts';

/**
 * The changes to a state or a group: rename, a state's priority, the OIDC access it grants, delete.
 * Each is confirmed after its dry run (as the CLI's `--dry-run`) shows what it does: the users who
 * lose an application and the back-channel logouts, the whitelists that follow a rename, or why it
 * is refused. Writes go through the built-in directory's admin interface, as for the CLI.
 */

interface CatalogAction {
  slug: 'rename' | 'priority' | 'access' | 'delete';
  entities: readonly Entity[];
  /**
   * The page's title and heading; a value `input` carries is shown bounded (`shownName`), and one it
   * lacks (given twice in the query, refused) is not named.
   */
  title(entity: Entity, name: string, input: URLSearchParams): string;
  button: string;
  /** The fields carried from the query into the confirmation form. */
  carry: readonly string[];
  /**
   * The field the operator typed on the entry's page, if any: shown again, with what they typed and why
   * it is refused, when the change is not possible.
   */
  field?: { label: string; name: string; numeric?: true };
  run(
    entity: Entity,
    name: string,
    input: URLSearchParams,
    options: ChangeOptions,
  ): Promise<{ changed: boolean; target: string | null }>;
  /** What the change does beyond what its consumers report. */
  notes?(entity: Entity, name: string, input: URLSearchParams, apps: ReadonlyMap<string, Application>): Html;
}

export function catalogActionRoutes(deps: AdminDependencies, entity: Entity): ConsoleRoute[] {
  const admin = () => writableDirectory(deps);
  const findEntry = (name: string) => findCatalogEntry(deps, entity, name);

  const actions: CatalogAction[] = [
    {
      slug: 'rename',
      entities: ['state', 'group'],
      title: (entity, name, input) => {
        const to = input.get('to');
        return to === null ? `Rename ${entity} ${name}?` : `Rename ${entity} ${name} to ${shownName(to)}?`;
      },
      button: 'Rename',
      carry: ['to'],
      field: { label: 'New name', name: 'to' },
      async run(entity, name, input, options) {
        const to = (input.get('to') ?? '').trim();
        if (entity === 'state') {
          const result = await admin().renameState(name, to, options);
          return { changed: result.changed, target: result.state.name };
        }
        const result = await admin().renameGroup(name, to, options);
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
      title: (_entity, name, input) => {
        const priority = input.get('priority');
        return priority === null
          ? `Change the priority of state ${name}?`
          : `Give state ${name} priority ${shownName(priority)}?`;
      },
      button: 'Change the priority',
      carry: ['priority'],
      field: { label: 'Priority', name: 'priority', numeric: true },
      async run(_entity, name, input, options) {
        const result = await admin().setStatePriority(name, priorityOf(input), options);
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
          : input.get('oidc_access') === 'no'
            ? `Stop granting OIDC access through ${entity} ${name}?`
            : `Change the OIDC access of ${entity} ${name}?`,
      button: 'Change OIDC access',
      carry: ['oidc_access'],
      async run(entity, name, input, options) {
        const value = input.get('oidc_access') ?? '';
        // Anything but yes must not be taken for no: that would take the access away.
        if (value !== 'yes' && value !== 'no')
          throw invalid(`oidc_access= takes yes or no, not ${quote(value)}`);
        const access = value === 'yes';
        const result =
          entity === 'state'
            ? await admin().grantStateAccess(name, access, options)
            : await admin().grantGroupAccess(name, access, options);
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
        if (entity === 'state') await admin().deleteState(name, options);
        else await admin().deleteGroup(name, options);
        return { changed: true, target: null };
      },
    },
  ];

  const actionPage = async (
    request: ConsoleRequest,
    entity: Entity,
    action: CatalogAction,
    name: string,
    input: URLSearchParams,
    problem?: { message: string; status: number; unpreviewable?: true },
  ) => {
    if (readOnly(deps))
      return readOnlyRefusal(request, deps, BASE[entity], {
        href: entryPath(entity, name),
        text: `Back to ${entity} ${name}`,
      });
    // A query that says no one change (a value given twice): nothing to preview, nor to confirm.
    if (problem?.unpreviewable)
      return renderAdmin(
        request,
        BASE[entity],
        action.title(entity, name, input),
        html`<h1>${action.title(entity, name, input)}</h1>
          ${formAlert(`Not possible: ${problem.message}`)}
          <p><a href="${entryPath(entity, name)}">Back</a></p>`,
        { status: problem.status },
      );
    const apps = await applicationsById(deps);
    let preview: Html;
    let possible = true;
    let refusal: { message: string; status: number } | undefined;
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
      // The dry run refuses as the confirmed change would (the same validation): the same status.
      refusal = { message: error.message, status: refusalStatus(error) };
      preview = html``;
    }
    const field = action.field;
    // A refusal with a field to correct focuses that field; any other, its alert (the first shown).
    const fieldFocused = !possible && field !== undefined;
    const problemShown = problem !== undefined && problem.message !== refusal?.message;
    if (!possible)
      preview = formAlert(
        html`Not possible: ${field ? `correct the ${field.label.toLowerCase()} below.` : refusal?.message}`,
        { focus: !fieldFocused && !problemShown },
      );
    renderAdmin(
      request,
      BASE[entity],
      action.title(entity, name, input),
      html`<h1>${action.title(entity, name, input)}</h1>
        ${problemShown ? formAlert(problem.message, { focus: !fieldFocused }) : ''} ${preview}
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
            : field
              ? // What was typed stays, at its field with the reason, to be corrected and previewed again.
                html`<form method="get" action="${entryPath(entity, name, `/${action.slug}`)}">
                  ${textField(field.label, field.name, input.get(field.name) ?? '', {
                    required: true,
                    // A text field: a number field would show nothing for a value that is no number.
                    ...(field.numeric ? { inputmode: 'numeric' } : { maxlength: NAME_FIELD_MAXLENGTH }),
                    ...(refusal ? { error: refusal.message, autofocus: true } : {}),
                  })}
                  <div class="actions">
                    <button type="submit" class="secondary">${action.button}…</button>
                    <a href="${entryPath(entity, name)}">Cancel</a>
                  </div>
                </form>`
              : html`<p><a href="${entryPath(entity, name)}">Back</a></p>`
        }`,
      { status: problem?.status ?? refusal?.status ?? 200 },
    );
  };

  return actions
    .filter((action) => action.entities.includes(entity))
    .flatMap((action): ConsoleRoute[] => [
      {
        method: 'GET',
        path: `${BASE[entity]}/:name/${action.slug}`,
        access: 'superuser',
        async handle(request) {
          const entry = await findEntry(request.params.name ?? '');
          if (!entry) return catalogNotFound(request, entity);
          if (sentToStoredSpelling(request, entity, entry, `/${action.slug}`)) return;
          const { name } = entry;
          const { input, error } = carriedQuery(request.ctx.query, action.carry);
          await actionPage(
            request,
            entity,
            action,
            name,
            input,
            error === undefined ? undefined : { message: error, status: 400, unpreviewable: true },
          );
        },
      },
      {
        method: 'POST',
        path: `${BASE[entity]}/:name/${action.slug}`,
        access: 'superuser',
        async handle(request) {
          const entry = await findEntry(request.params.name ?? '');
          if (!entry) return catalogNotFound(request, entity);
          // A form is confirmed where it was sent (no redirect of a POST): the change names the entry
          // as stored, as its preview did.
          const { name } = entry;
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
              status: refusalStatus(error),
            });
          }
        },
      },
    ]);
}
