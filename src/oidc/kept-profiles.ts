import { covers, type LogPosition } from '../db/change-log.ts';
import type { Directory, UserProfile } from '../directory/port.ts';
import { setNewest } from '../util/bounded-map.ts';
import type { ProcessChangeEpochs } from './change-epoch-cache.ts';
import { MAX_OWN_WRITES_NOTED, OwnWrites } from './own-writes.ts';
import { currentRequest as providerRequest } from './provider-internals.ts';

/**
 * Users' profiles kept in memory across requests, as found, while the change log
 * (src/db/change-log.ts) names no change to them: the profile lookup that userinfo, introspection and
 * every token grant make (findAccount, the access policy, JWT access-token claims) is then answered
 * without a statement. Only a directory whose every change the log names may have its profiles kept
 * (`Directory.keepable`: the built-in directory, whose triggers log `User <id>` for a user's row and
 * memberships, `State <id>` and `Group <id>` for a state's or group's row).
 *
 * The rules are those of the stored rows kept beside them (kept-rows.ts), whose read of the log drops
 * profiles too:
 * - A request that uses a kept profile first awaits its read of the log (one per request, shared by
 *   the requests that ask in one turn of the event loop or while the read before runs), which drops
 *   the profiles of the users the log names past the process's position; a state or a group that
 *   changed drops every profile (any number embed it). A change committed by any writer before the request arrived is therefore seen by it.
 * - The `save_bearer` stage reads the log afresh (once per request, with the applications' epoch)
 *   before it uses a kept profile (`directoryAtSave`): a change committed while the request ran still
 *   stops its tokens, as it did when the stage read the user from the database.
 * - A profile is kept only if the statement that loaded it saw the log at or past the process's
 *   position: one read before a change the process has already processed would never be dropped.
 * - This process's own directory changes, once committed, drop the profile of the user they changed
 *   and refuse to keep a load of it that began before they completed (`wrote`, per user as the kept
 *   rows' own writes are per key, own-writes.ts): an operator's change of one user leaves the other
 *   profiles, and their loads in flight, alone. A change of a state or a group, which any number of
 *   profiles embed, drops every profile and refuses every load in flight.
 * - A reader behind the log's pruning horizon drops everything. Unknown users are never kept.
 * - At most `max` profiles: the oldest kept goes first.
 *
 * Kept profiles are frozen: every request is handed the same object.
 */
export class KeptProfiles {
  readonly #max: number;
  readonly #cursor: () => LogPosition | undefined;
  #profiles = new Map<number, UserProfile>();
  /** This process's own directory changes completed so far (`wrote`), by user id. */
  readonly #ownWrites: OwnWrites<number>;

  /** `cursor` is the position the process has read the log up to (kept-rows.ts). */
  constructor(
    cursor: () => LogPosition | undefined,
    max = MAX_KEPT_PROFILES,
    maxWritesNoted = MAX_OWN_WRITES_NOTED,
  ) {
    this.#cursor = cursor;
    this.#max = max;
    this.#ownWrites = new OwnWrites(maxWritesNoted);
  }

  get size(): number {
    return this.#profiles.size;
  }

  /** The profile kept for user `id`, if any. */
  peek(id: number): UserProfile | undefined {
    return this.#profiles.get(id);
  }

  /** A ticket for a load that may be kept: taken before the statement runs (see `keep`). */
  ticket(): number {
    return this.#ownWrites.ticket();
  }

  /**
   * Keeps `profile` (found by a statement that saw the log at `position`, started at `ticket`) unless
   * the process has already processed a change the statement did not see, or changed this user (or a
   * state or group) since it started. Returns the profile as handed out from then on (frozen when kept).
   */
  keep(profile: UserProfile, position: LogPosition | undefined, ticket: number): UserProfile {
    if (this.#ownWrites.writtenSince(profile.id, ticket) || !covers(position, this.#cursor())) return profile;
    const kept = frozen(profile);
    setNewest(this.#profiles, kept.id, kept, this.#max);
    return kept;
  }

  /** Drops what a change-log key names: a user's profile, or every profile for a state or group. */
  forget(logKey: string): void {
    if (logKey.startsWith('User ')) this.#profiles.delete(Number(logKey.slice('User '.length)));
    else if (logKey.startsWith('State ') || logKey.startsWith('Group ')) this.#profiles.clear();
  }

  clear(): void {
    this.#profiles.clear();
  }

  /**
   * This process changed user `userId` (called once the change committed), or, without one, a state or
   * a group: any number of profiles embed it, so every profile goes.
   */
  wrote(userId?: number): void {
    if (userId === undefined) {
      this.#profiles.clear();
      this.#ownWrites.wroteUnnamed();
      return;
    }
    this.#profiles.delete(userId);
    this.#ownWrites.wrote(userId);
  }
}

/** Profiles kept beyond this many push out the oldest (a few hundred bytes to a few kB each). */
export const MAX_KEPT_PROFILES = 20_000;

function frozen(profile: UserProfile): UserProfile {
  Object.freeze(profile.mainCharacter);
  if (profile.state) Object.freeze(profile.state);
  for (const group of profile.groups) Object.freeze(group);
  Object.freeze(profile.groups);
  return Object.freeze(profile);
}

/** What the profile lookup needs of the change epochs to keep profiles across requests. */
export type ProfileEpochs = Pick<ProcessChangeEpochs, 'synced' | 'atSave' | 'kept'>;

/** The profile lookups of a process that keeps profiles (`keptProfileLookup`). */
export interface KeptProfileLookup {
  /** Profiles as current as the database was when the request arrived (its read of the log). */
  directory: Pick<Directory, 'profileById'>;
  /**
   * Profiles as current as the database was right before tokens are saved (the `save_bearer` stage:
   * the log read afresh, once per request, as for applications): a change committed while the
   * request ran still stops its tokens.
   */
  directoryAtSave: Pick<Directory, 'profileById'>;
  /** Stops following the directory's own changes. */
  close(): void;
}

/**
 * `directory` whose `profileById` answers from the profiles kept in memory (`KeptProfiles`) inside a
 * provider request, when the directory's profiles may be kept (`Directory.keepable`); the directory
 * itself otherwise. Outside a provider request every lookup reads the directory.
 */
export function keptProfileLookup(
  directory: Pick<Directory, 'profileById' | 'keepable'>,
  epochs: ProfileEpochs,
  request: () => object | undefined = providerRequest,
): KeptProfileLookup {
  const keepable = directory.keepable;
  const profiles = epochs.kept?.profiles;
  if (!keepable || !profiles) return { directory, directoryAtSave: directory, close: () => undefined };
  const stopFollowing = keepable.afterOwnChange((userId) => profiles.wrote(userId));
  const lookup = (logRead: (request: object) => Promise<number>): Pick<Directory, 'profileById'> => ({
    async profileById(id) {
      const ctx = request();
      if (!ctx) return directory.profileById(id);
      if (profiles.peek(id)) {
        await logRead(ctx);
        const hit = profiles.peek(id);
        if (hit) return hit;
      }
      const ticket = profiles.ticket();
      const { profile, position } = await keepable.profileWithPositionById(id);
      return profile && profiles.keep(profile, position, ticket);
    },
  });
  return {
    directory: lookup((ctx) => epochs.synced(ctx)),
    directoryAtSave: lookup((ctx) => epochs.atSave(ctx)),
    close: stopFollowing,
  };
}
