import type { DirectoryChange } from '../directory/port.ts';
import type { Fingerprints, UserFingerprint } from './fingerprint.ts';
import type { AaDb } from './schema.ts';

/**
 * Alliance Auth's states and groups by id, and their renames. Application whitelists name states
 * and groups, and AA renames them in place (Django admin): read per user, a rename looked like every
 * member leaving the old name and joining the new one, so the members lost every application that
 * whitelisted the old name (tokens revoked, back-channel logouts), and could not sign in again until
 * an operator edited the whitelists. Each cycle now reads the names by id; a name that changed under
 * the same id is a rename, which the whitelists follow in the cycle's transaction, and membership is
 * compared by id under the current names, so that a rename alone changes no user.
 */
export type CatalogEntity = 'state' | 'group';

export interface CatalogNames {
  state: ReadonlyMap<number, string>;
  group: ReadonlyMap<number, string>;
}

export interface CatalogRename {
  entity: CatalogEntity;
  id: number;
  from: string;
  to: string;
}

/** A state or group whose id is gone from Alliance Auth since the last cycle. */
export interface CatalogDeletion {
  entity: CatalogEntity;
  id: number;
  name: string;
}

export const CATALOG_ENTITIES: readonly CatalogEntity[] = ['state', 'group'];

/** Every state's and group's name in Alliance Auth's database, by id (two small queries). */
export async function readCatalogNames(db: AaDb): Promise<CatalogNames> {
  const [states, groups] = await Promise.all([
    db.selectFrom('authentication_state').select(['id', 'name']).execute(),
    db.selectFrom('auth_group').select(['id', 'name']).execute(),
  ]);
  return {
    state: new Map(states.map((row) => [Number(row.id), row.name])),
    group: new Map(groups.map((row) => [Number(row.id), row.name])),
  };
}

/**
 * The names the fingerprints stored before this catalog was kept (an installation upgraded while
 * polling): enough to see a rename of any state or group that had a member.
 */
export function namesSeenIn(fingerprints: Fingerprints): CatalogNames {
  const state = new Map<number, string>();
  const group = new Map<number, string>();
  for (const fingerprint of fingerprints.values()) {
    if (fingerprint.state) state.set(fingerprint.state.id, fingerprint.state.name);
    for (const member of fingerprint.groups) group.set(member.id, member.name);
  }
  return { state, group };
}

/** The states and groups whose name changed under the same id. */
export function catalogRenames(before: CatalogNames, after: CatalogNames): CatalogRename[] {
  const renames: CatalogRename[] = [];
  for (const entity of CATALOG_ENTITIES) {
    for (const [id, to] of after[entity]) {
      const from = before[entity].get(id);
      if (from !== undefined && from !== to) renames.push({ entity, id, from, to });
    }
  }
  return renames;
}

/** The states and groups whose id `after` no longer has, with the name `before` knew. */
export function catalogDeletions(before: CatalogNames, after: CatalogNames): CatalogDeletion[] {
  const deletions: CatalogDeletion[] = [];
  for (const entity of CATALOG_ENTITIES) {
    for (const [id, name] of before[entity]) if (!after[entity].has(id)) deletions.push({ entity, id, name });
  }
  return deletions;
}

/**
 * The fingerprints with each state's and group's name as `names` has it now (by id), so that
 * comparing two cycles compares membership, not names. A fingerprint that already reads so is kept
 * as it is (a quiet cycle allocates nothing); an id `names` lacks (deleted since) keeps its name.
 */
export function underCurrentNames(fingerprints: Fingerprints, names: CatalogNames): Fingerprints {
  let renamed: Map<number, UserFingerprint> | undefined;
  for (const [userId, fingerprint] of fingerprints) {
    const updated = withCurrentNames(fingerprint, names);
    if (updated === fingerprint) continue;
    renamed ??= new Map(fingerprints);
    renamed.set(userId, updated);
  }
  return renamed ?? fingerprints;
}

function withCurrentNames(fingerprint: UserFingerprint, names: CatalogNames): UserFingerprint {
  const stateName = fingerprint.state && (names.state.get(fingerprint.state.id) ?? fingerprint.state.name);
  const stale = fingerprint.groups.some((group) => (names.group.get(group.id) ?? group.name) !== group.name);
  if (stateName === (fingerprint.state?.name ?? null) && !stale) return fingerprint;
  return {
    ...fingerprint,
    state: fingerprint.state && { id: fingerprint.state.id, name: stateName! },
    groups: stale
      ? fingerprint.groups.map((group) => ({ id: group.id, name: names.group.get(group.id) ?? group.name }))
      : fingerprint.groups,
  };
}

/**
 * The directory's changes for a cycle's renames, which the application whitelists follow. Names are
 * matched exactly, as whitelists match them; when one rename's new name is another's old one, even in
 * another case (two names swapped), each goes through a name of its own first, so that none lands on
 * a name another still holds (whitelists keep one entry per name regardless of case).
 */
export function renameChanges(renames: readonly CatalogRename[]): DirectoryChange[] {
  const changes: DirectoryChange[] = [];
  for (const entity of CATALOG_ENTITIES) {
    const list = renames.filter((rename) => rename.entity === entity);
    // Another rename's old name, in any case: whitelists hold one entry per name regardless of case.
    const chained = list.some((rename) =>
      list.some((other) => other !== rename && other.from.toLowerCase() === rename.to.toLowerCase()),
    );
    const through = (rename: CatalogRename) => `aa-oidc: renaming ${entity} ${rename.id}`;
    if (chained) {
      for (const rename of list)
        changes.push({ kind: 'catalog_renamed', entity, from: rename.from, to: through(rename) });
      for (const rename of list)
        changes.push({ kind: 'catalog_renamed', entity, from: through(rename), to: rename.to });
    } else {
      for (const rename of list)
        changes.push({ kind: 'catalog_renamed', entity, from: rename.from, to: rename.to });
    }
  }
  return changes;
}
