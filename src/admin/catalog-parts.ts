import type { Application } from '../applications/types.ts';
import type { ConsoleRequest } from '../console/http.ts';
import { validatePriority } from '../directory/builtin/validation.ts';
import { html } from '../http/pages/layout.ts';
import { type AdminDependencies, renderAdmin } from './context.ts';

/**
 * What the state and group pages share: where they are, their entries with what each grants and how
 * many hold it, and the applications whose whitelists name one.
 */

export type Entity = 'state' | 'group';

export interface CatalogEntry {
  name: string;
  priority: number | null;
  oidcAccess: boolean;
  /** Null when the directory does not count them (Alliance Auth). */
  holders: number | null;
}

export const BASE: Readonly<Record<Entity, '/admin/states' | '/admin/groups'>> = {
  state: '/admin/states',
  group: '/admin/groups',
};

export const CATALOG_DONE: Readonly<Record<string, string>> = {
  created: 'Created.',
  rename: 'Renamed; application whitelists follow.',
  priority: 'Priority changed.',
  access: 'OIDC access changed.',
  delete: 'Deleted.',
  unchanged: 'Nothing changed.',
};

export function entryPath(entity: Entity, name: string, suffix = ''): string {
  return `${BASE[entity]}/${encodeURIComponent(name)}${suffix}`;
}

/** The applications whose whitelist names `name` (exactly, as the policy matches it). */
export function whitelisting(apps: Iterable<Application>, entity: Entity, name: string): Application[] {
  return [...apps].filter((app) => (entity === 'state' ? app.states : app.groups).includes(name));
}

/** The states or groups, as the admin interface (or, read-only, the directory port) lists them. */
export async function catalogEntries(deps: AdminDependencies, entity: Entity): Promise<CatalogEntry[]> {
  const admin = deps.directoryAdmin;
  if (!admin) {
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
}

/**
 * The state or group an address names, matched as the directory matches a name (the built-in one
 * regardless of case and Unicode form, Alliance Auth exactly or else regardless of case), as the
 * user list's filters are: its `name` is the stored spelling, which may differ from `name`.
 */
export async function findCatalogEntry(
  deps: AdminDependencies,
  entity: Entity,
  name: string,
): Promise<CatalogEntry | undefined> {
  const entries = await catalogEntries(deps, entity);
  const stored = deps.directory.nameAmong(
    entries.map((entry) => entry.name),
    name,
  );
  return entries.find((entry) => entry.name === stored);
}

/**
 * A page of an entry addressed by another spelling of its name (another case, another Unicode form)
 * is sent to its address under the stored one, the query kept: the page, its forms and its links
 * then name the entry as the directory does. True when it was.
 */
export function sentToStoredSpelling(
  request: ConsoleRequest,
  entity: Entity,
  entry: CatalogEntry,
  suffix = '',
): boolean {
  if (request.params.name === entry.name) return false;
  const query = request.ctx.querystring;
  request.seeOther(`${entryPath(entity, entry.name, suffix)}${query === '' ? '' : `?${query}`}`);
  return true;
}

/**
 * A whole number (out of range too, so that the message names it), or NaN: the directory names what
 * is wrong with anything else.
 */
export function priorityOf(input: URLSearchParams): number {
  const text = (input.get('priority') ?? '').trim();
  // Not a whole number: the directory's validation refuses the text as typed (its message names it).
  return /^-?\d+$/.test(text) ? Number(text) : validatePriority(text);
}

export function catalogNotFound(request: ConsoleRequest, entity: Entity): void {
  renderAdmin(
    request,
    BASE[entity],
    `No such ${entity}`,
    html`<h1>No such ${entity}</h1>
      <p class="alert" role="alert">No ${entity} has this name.</p>
      <p><a href="${BASE[entity]}">All ${entity}s</a></p>`,
    { status: 404 },
  );
}
