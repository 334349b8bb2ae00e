import type { Kysely, Transaction } from 'kysely';
import type { Database, GroupRow, NewUserRow, StateRow, UserRow, UserUpdate } from '../db/schema.ts';
import type { Logger } from '../logging/logger.ts';
import { conflict, DirectoryError, invalid, notFound } from './errors.ts';
import {
  createDummyHash,
  generatePassword,
  hashPassword,
  passwordMatches,
  passwordNeedsRehash,
  validateNewPassword,
} from './passwords.ts';
import * as queries from './queries.ts';
import type {
  BootstrapLogin,
  ChangeOptions,
  CommittedListener,
  DirectoryService,
  GroupChange,
  LifecycleEvent,
  LifecycleEventMeta,
  LifecycleSubscriber,
  NewUser,
  PasswordCheck,
  StateChange,
  UserChange,
  UserChanges,
  UserField,
  UserProfile,
  UserRef,
} from './types.ts';
import {
  MAIN_CHARACTER_FIELDS,
  normalizeUsername,
  quote,
  validateEmail,
  validateFlag,
  validateLocale,
  validateName,
  validatePriority,
  validateSearch,
} from './validation.ts';

type Emit = (event: LifecycleEvent) => Promise<void>;

/** Thrown at the end of a dry run's transaction so that Kysely rolls it back. */
class DryRunRollback {
  readonly result: unknown;
  constructor(result: unknown) {
    this.result = result;
  }
}

const BOOTSTRAP_USERNAME = 'admin';
const USER_FIELDS: readonly UserField[] = [
  'email',
  'emailVerified',
  'superuser',
  'oidcAccess',
  'locale',
  ...MAIN_CHARACTER_FIELDS.map((entry) => entry.field),
];

function flag(value: boolean): 0 | 1 {
  return value ? 1 : 0;
}

/** "existing states: A, B" or "no states exist yet", capped so a message stays one line. */
function describeExisting(kind: 'states' | 'groups', names: readonly string[]): string {
  if (names.length === 0) return `no ${kind} exist yet`;
  const shown = names.slice(0, 30).join(', ');
  return `existing ${kind}: ${shown}${names.length > 30 ? ` … and ${names.length - 30} more` : ''}`;
}

function validateActor(actor: unknown): string | null {
  if (actor === undefined) return null;
  if (typeof actor !== 'string' || actor.length === 0 || actor.length > 200 || /\p{Cc}/u.test(actor)) {
    throw invalid(`invalid actor ${quote(actor)}: use 1–200 characters without control characters`);
  }
  return actor;
}

function validateUserRef(ref: unknown): UserRef {
  if (typeof ref === 'object' && ref !== null) {
    if ('id' in ref) {
      const id = (ref as { id: unknown }).id;
      if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return { id };
      throw invalid(`invalid user id ${quote(id)}: expected a positive whole number`);
    }
    if ('username' in ref) return { username: normalizeUsername((ref as { username: unknown }).username) };
  }
  throw invalid('a user is named by { username } or { id }');
}

function describeUser(ref: UserRef): string {
  return 'id' in ref
    ? `unknown user id ${ref.id}`
    : `unknown user ${quote(ref.username)}: no user has this username`;
}

/** Builds the directory: the one write path for users, states, groups and memberships. */
export function createDirectory(db: Kysely<Database>, logger?: Logger): DirectoryService {
  const subscribers = new Set<LifecycleSubscriber>();
  const listeners = new Set<CommittedListener>();
  const dummyHash = createDummyHash();

  function notifyCommitted(event: LifecycleEvent, meta: LifecycleEventMeta): void {
    for (const listener of listeners) {
      const report = (error: unknown) =>
        logger?.error(
          {
            kind: event.kind,
            eventId: meta.eventId,
            error: error instanceof Error ? error.message : String(error),
          },
          'a lifecycle listener failed; the change itself is committed',
        );
      try {
        const pending = listener(event, meta);
        if (pending && typeof pending.then === 'function') pending.catch(report);
      } catch (error) {
        report(error);
      }
    }
  }

  /**
   * Runs one change in one transaction. `emit` writes the event's `lifecycle_event` row and runs
   * every subscriber inside the transaction (a throw rolls everything back); committed listeners
   * run once the transaction is committed.
   */
  async function change<T>(
    options: ChangeOptions | undefined,
    work: (trx: Transaction<Database>, emit: Emit) => Promise<T>,
  ): Promise<T> {
    const actor = validateActor(options?.actor);
    const dryRun = options?.dryRun === undefined ? false : validateFlag('dryRun', options.dryRun);
    const emitted: Array<{ event: LifecycleEvent; meta: LifecycleEventMeta }> = [];
    let result: T;
    try {
      result = await db.transaction().execute(async (trx) => {
        const emit: Emit = async (event) => {
          const at = Date.now();
          const eventId = await queries.insertLifecycleEvent(trx, event, actor, at);
          const meta: LifecycleEventMeta = { eventId, at, actor, dryRun };
          for (const subscriber of subscribers) await subscriber(event, trx, meta);
          emitted.push({ event, meta });
        };
        const value = await work(trx, emit);
        if (dryRun) throw new DryRunRollback(value);
        return value;
      });
    } catch (error) {
      if (error instanceof DryRunRollback) return error.result as T;
      if (queries.isUniqueViolation(error)) {
        throw conflict(
          'the change conflicts with a concurrent one (a name or username was just taken); try again',
        );
      }
      throw error;
    }
    for (const { event, meta } of emitted) notifyCommitted(event, meta);
    return result;
  }

  async function requireProfile(trx: Transaction<Database>, userId: number): Promise<UserProfile> {
    const profile = await queries.selectProfileById(trx, userId);
    if (!profile) throw new Error(`user ${userId} vanished inside its own transaction`);
    return profile;
  }

  async function lockUser(trx: Transaction<Database>, ref: UserRef): Promise<UserRow> {
    const user = await queries.lockUser(trx, ref);
    if (!user) throw notFound(describeUser(ref));
    return user;
  }

  async function resolveState(db: queries.Db, name: string): Promise<StateRow> {
    const state = await queries.selectStateByName(db, name);
    if (state) return state;
    throw notFound(
      `unknown state ${quote(name)}; ${describeExisting('states', await queries.selectStateNames(db))}`,
    );
  }

  async function resolveGroup(db: queries.Db, name: string): Promise<GroupRow> {
    const group = await queries.selectGroupByName(db, name);
    if (group) return group;
    throw notFound(
      `unknown group ${quote(name)}; ${describeExisting('groups', await queries.selectGroupNames(db))}`,
    );
  }

  /** Refuses to take away the last active superuser: nobody could administer the directory. */
  async function keepOneSuperuser(trx: Transaction<Database>, user: UserRow, action: string): Promise<void> {
    if (user.superuser !== 1 || user.active !== 1) return;
    if ((await queries.lockOtherActiveSuperusers(trx, user.id)) > 0) return;
    throw conflict(
      `refusing to ${action} ${quote(user.username)}: it is the only active superuser; make another user a superuser first`,
    );
  }

  interface ValidUser {
    username: string;
    values: Omit<NewUserRow, 'id' | 'username' | 'password_hash' | 'state_id' | 'created_at' | 'updated_at'>;
    state: string | null;
    groups: string[];
  }

  function validateNewUser(input: NewUser): ValidUser {
    if (typeof input !== 'object' || input === null) throw invalid('a new user must be an object');
    const values: ValidUser['values'] = {
      email: validateEmail(input.email ?? ''),
      email_verified: flag(
        input.emailVerified === undefined ? false : validateFlag('emailVerified', input.emailVerified),
      ),
      superuser: flag(input.superuser === undefined ? false : validateFlag('superuser', input.superuser)),
      oidc_access: flag(
        input.oidcAccess === undefined ? false : validateFlag('oidcAccess', input.oidcAccess),
      ),
      active: flag(input.active === undefined ? true : validateFlag('active', input.active)),
      locale: input.locale === undefined ? null : validateLocale(input.locale),
    };
    for (const { field, column, validate } of MAIN_CHARACTER_FIELDS) {
      const value = input[field];
      if (value !== undefined) Object.assign(values, { [column]: validate(value) });
    }
    if (input.groups !== undefined && !Array.isArray(input.groups))
      throw invalid('groups must be a list of group names');
    return {
      username: normalizeUsername(input.username),
      values,
      state: input.state === undefined || input.state === null ? null : validateName('state', input.state),
      groups: (input.groups ?? []).map((group) => validateName('group', group)),
    };
  }

  async function insertUser(
    trx: Transaction<Database>,
    emit: Emit,
    input: ValidUser,
    passwordHash: string | null,
  ): Promise<UserProfile> {
    const existing = await queries.selectUser(trx, { username: input.username });
    if (existing) {
      throw conflict(
        existing.username === input.username
          ? `username ${quote(input.username)} is taken`
          : `username ${quote(input.username)} is taken by ${quote(existing.username)} (usernames are unique regardless of case)`,
      );
    }
    const state = input.state === null ? null : await resolveState(trx, input.state);
    const groups = new Map<number, GroupRow>();
    for (const name of input.groups) {
      const group = await resolveGroup(trx, name);
      groups.set(group.id, group);
    }
    const now = Date.now();
    const { id } = await trx
      .insertInto('app_user')
      .values({
        ...input.values,
        username: input.username,
        password_hash: passwordHash,
        state_id: state?.id ?? null,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    if (groups.size > 0) {
      await trx
        .insertInto('user_group')
        .values([...groups.keys()].map((groupId) => ({ user_id: id, group_id: groupId })))
        .execute();
    }
    await emit({ kind: 'user_created', userId: id, username: input.username });
    return requireProfile(trx, id);
  }

  /** Validates `changes` into column values; unknown keys are refused, naming the valid ones. */
  function validateChanges(changes: UserChanges): Map<UserField, unknown> {
    if (typeof changes !== 'object' || changes === null) throw invalid('user changes must be an object');
    const valid = new Map<UserField, unknown>();
    for (const [key, value] of Object.entries(changes)) {
      if (value === undefined) continue;
      if (!(USER_FIELDS as readonly string[]).includes(key)) {
        throw invalid(`unknown user field ${quote(key)}; valid fields: ${USER_FIELDS.join(', ')}`);
      }
      const field = key as UserField;
      switch (field) {
        case 'email':
          valid.set(field, validateEmail(value));
          break;
        case 'emailVerified':
        case 'superuser':
        case 'oidcAccess':
          valid.set(field, flag(validateFlag(field, value)));
          break;
        case 'locale':
          valid.set(field, validateLocale(value));
          break;
        default: {
          const entry = MAIN_CHARACTER_FIELDS.find((candidate) => candidate.field === field)!;
          valid.set(field, entry.validate(value));
        }
      }
    }
    return valid;
  }

  const COLUMN_OF: Record<UserField, keyof UserRow> = {
    email: 'email',
    emailVerified: 'email_verified',
    superuser: 'superuser',
    oidcAccess: 'oidc_access',
    locale: 'locale',
    ...Object.fromEntries(MAIN_CHARACTER_FIELDS.map((entry) => [entry.field, entry.column])),
  } as Record<UserField, keyof UserRow>;

  const service: DirectoryService = {
    subscribe(subscriber) {
      subscribers.add(subscriber);
      return () => subscribers.delete(subscriber);
    },

    afterCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async createUser(input, options) {
      const valid = validateNewUser(input);
      let passwordHash: string | null = null;
      if (input.password !== undefined) {
        validateNewPassword(input.password);
        passwordHash = await hashPassword(input.password);
      }
      return change(options, (trx, emit) => insertUser(trx, emit, valid, passwordHash));
    },

    async updateUser(ref, changes, options) {
      const target = validateUserRef(ref);
      const valid = validateChanges(changes);
      return change(options, async (trx, emit) => {
        const user = await lockUser(trx, target);
        const update: Record<string, unknown> = {};
        const fields: UserField[] = [];
        for (const [field, value] of valid) {
          const column = COLUMN_OF[field];
          if (user[column] === value) continue;
          update[column] = value;
          fields.push(field);
        }
        // A new address is unverified until someone says otherwise.
        if (fields.includes('email') && !valid.has('emailVerified') && user.email_verified === 1) {
          update.email_verified = 0;
          fields.push('emailVerified');
        }
        if (fields.length === 0) return { changed: false, profile: await requireProfile(trx, user.id) };
        if (update.superuser === 0) await keepOneSuperuser(trx, user, 'remove superuser from');
        await trx
          .updateTable('app_user')
          .set({ ...(update as UserUpdate), updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        fields.sort();
        await emit({ kind: 'user_updated', userId: user.id, username: user.username, fields });
        return { changed: true, profile: await requireProfile(trx, user.id) };
      });
    },

    async setPassword(ref, password, options) {
      const target = validateUserRef(ref);
      validateNewPassword(password);
      const passwordHash = await hashPassword(password);
      return change(options, async (trx, emit) => {
        const user = await lockUser(trx, target);
        await trx
          .updateTable('app_user')
          .set({ password_hash: passwordHash, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        await emit({ kind: 'user_password_changed', userId: user.id, username: user.username });
        return { changed: true, profile: await requireProfile(trx, user.id) };
      });
    },

    async deactivate(ref, options) {
      const target = validateUserRef(ref);
      return change(options, async (trx, emit): Promise<UserChange> => {
        const user = await lockUser(trx, target);
        if (user.active === 0) return { changed: false, profile: await requireProfile(trx, user.id) };
        await keepOneSuperuser(trx, user, 'deactivate');
        await trx
          .updateTable('app_user')
          .set({ active: 0, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        await emit({ kind: 'user_deactivated', userId: user.id, username: user.username });
        return { changed: true, profile: await requireProfile(trx, user.id) };
      });
    },

    async activate(ref, options) {
      const target = validateUserRef(ref);
      return change(options, async (trx, emit): Promise<UserChange> => {
        const user = await lockUser(trx, target);
        if (user.active === 1) return { changed: false, profile: await requireProfile(trx, user.id) };
        await trx
          .updateTable('app_user')
          .set({ active: 1, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        await emit({ kind: 'user_activated', userId: user.id, username: user.username });
        return { changed: true, profile: await requireProfile(trx, user.id) };
      });
    },

    async setState(ref, stateName, options) {
      const target = validateUserRef(ref);
      const name = stateName === null ? null : validateName('state', stateName);
      return change(options, async (trx, emit): Promise<UserChange> => {
        const user = await lockUser(trx, target);
        const state = name === null ? null : await resolveState(trx, name);
        if ((state?.id ?? null) === user.state_id) {
          return { changed: false, profile: await requireProfile(trx, user.id) };
        }
        const before = await requireProfile(trx, user.id);
        await trx
          .updateTable('app_user')
          .set({ state_id: state?.id ?? null, updated_at: Date.now() })
          .where('id', '=', user.id)
          .execute();
        await emit({
          kind: 'user_state_changed',
          userId: user.id,
          username: user.username,
          fromState: before.state?.name ?? null,
          toState: state?.name ?? null,
        });
        return { changed: true, profile: await requireProfile(trx, user.id) };
      });
    },

    async addGroup(ref, groupName, options) {
      const target = validateUserRef(ref);
      const name = validateName('group', groupName);
      return change(options, async (trx, emit): Promise<UserChange> => {
        const user = await lockUser(trx, target);
        const group = await resolveGroup(trx, name);
        const member = await trx
          .selectFrom('user_group')
          .select('user_id')
          .where('user_id', '=', user.id)
          .where('group_id', '=', group.id)
          .executeTakeFirst();
        if (member) return { changed: false, profile: await requireProfile(trx, user.id) };
        await trx.insertInto('user_group').values({ user_id: user.id, group_id: group.id }).execute();
        await emit({ kind: 'user_group_added', userId: user.id, username: user.username, group: group.name });
        return { changed: true, profile: await requireProfile(trx, user.id) };
      });
    },

    async removeGroup(ref, groupName, options) {
      const target = validateUserRef(ref);
      const name = validateName('group', groupName);
      return change(options, async (trx, emit): Promise<UserChange> => {
        const user = await lockUser(trx, target);
        const group = await resolveGroup(trx, name);
        const result = await trx
          .deleteFrom('user_group')
          .where('user_id', '=', user.id)
          .where('group_id', '=', group.id)
          .executeTakeFirst();
        if (Number(result.numDeletedRows) === 0)
          return { changed: false, profile: await requireProfile(trx, user.id) };
        await emit({
          kind: 'user_group_removed',
          userId: user.id,
          username: user.username,
          group: group.name,
        });
        return { changed: true, profile: await requireProfile(trx, user.id) };
      });
    },

    async deleteUser(ref, options) {
      const target = validateUserRef(ref);
      return change(options, async (trx, emit): Promise<UserChange> => {
        const user = await lockUser(trx, target);
        await keepOneSuperuser(trx, user, 'delete');
        const profile = await requireProfile(trx, user.id);
        // Subscribers run first: they may still need what the row owns (tokens, sessions).
        await emit({ kind: 'user_deleted', userId: user.id, username: user.username });
        await trx.deleteFrom('app_user').where('id', '=', user.id).execute();
        return { changed: true, profile };
      });
    },

    async recordLogin(userId, at = Date.now()) {
      const target = validateUserRef({ id: userId });
      if (!('id' in target)) return;
      await db.updateTable('app_user').set({ last_login_at: at }).where('id', '=', target.id).execute();
    },

    async createState(stateName, priority, oidcAccess = false, options) {
      const name = validateName('state', stateName);
      const validPriority = validatePriority(priority);
      const access = validateFlag('oidcAccess', oidcAccess);
      return change(options, async (trx, emit) => {
        const sameName = await queries.selectStateByName(trx, name);
        if (sameName)
          throw conflict(
            `state ${quote(sameName.name)} already exists (state names are unique regardless of case)`,
          );
        const samePriority = await queries.selectStateByPriority(trx, validPriority);
        if (samePriority) {
          const used = (await queries.selectStateSummaries(trx)).map(
            (state) => `${state.priority} (${state.name})`,
          );
          throw conflict(
            `priority ${validPriority} is already used by state ${quote(samePriority.name)}; priorities are unique, used: ${used.join(', ')}`,
          );
        }
        const state = await trx
          .insertInto('state')
          .values({ name, priority: validPriority, oidc_access: flag(access), created_at: Date.now() })
          .returningAll()
          .executeTakeFirstOrThrow();
        await emit({
          kind: 'state_created',
          stateId: state.id,
          name,
          priority: validPriority,
          oidcAccess: access,
        });
        return state;
      });
    },

    async grantStateAccess(stateName, oidcAccess, options) {
      const name = validateName('state', stateName);
      const access = validateFlag('oidcAccess', oidcAccess);
      return change(options, async (trx, emit): Promise<StateChange> => {
        const state = await resolveState(trx, name);
        const updated = await trx
          .updateTable('state')
          .set({ oidc_access: flag(access) })
          .where('id', '=', state.id)
          .where('oidc_access', '<>', flag(access))
          .returningAll()
          .executeTakeFirst();
        if (!updated) return { changed: false, state };
        await emit({ kind: 'state_access_changed', stateId: state.id, name: state.name, oidcAccess: access });
        return { changed: true, state: updated };
      });
    },

    async createGroup(groupName, oidcAccess = false, options) {
      const name = validateName('group', groupName);
      const access = validateFlag('oidcAccess', oidcAccess);
      return change(options, async (trx, emit) => {
        const sameName = await queries.selectGroupByName(trx, name);
        if (sameName)
          throw conflict(
            `group ${quote(sameName.name)} already exists (group names are unique regardless of case)`,
          );
        const group = await trx
          .insertInto('auth_group')
          .values({ name, oidc_access: flag(access), created_at: Date.now() })
          .returningAll()
          .executeTakeFirstOrThrow();
        await emit({ kind: 'group_created', groupId: group.id, name, oidcAccess: access });
        return group;
      });
    },

    async grantGroupAccess(groupName, oidcAccess, options) {
      const name = validateName('group', groupName);
      const access = validateFlag('oidcAccess', oidcAccess);
      return change(options, async (trx, emit): Promise<GroupChange> => {
        const group = await resolveGroup(trx, name);
        const updated = await trx
          .updateTable('auth_group')
          .set({ oidc_access: flag(access) })
          .where('id', '=', group.id)
          .where('oidc_access', '<>', flag(access))
          .returningAll()
          .executeTakeFirst();
        if (!updated) return { changed: false, group };
        await emit({ kind: 'group_access_changed', groupId: group.id, name: group.name, oidcAccess: access });
        return { changed: true, group: updated };
      });
    },

    findUserByUsername(username) {
      return queries.selectUser(db, { username: normalizeUsername(username) });
    },

    findUserById(id) {
      return queries.selectUser(db, validateUserRef({ id }));
    },

    loadUserProfile(userId) {
      const target = validateUserRef({ id: userId });
      return queries.selectProfile(db, target);
    },

    async getUserProfile(ref) {
      const target = validateUserRef(ref);
      const profile = await queries.selectProfile(db, target);
      if (!profile) throw notFound(describeUser(target));
      return profile;
    },

    async listUsers(filter = {}) {
      const query: queries.UserQuery = {};
      if (filter.state !== undefined) {
        query.stateId =
          filter.state === null ? null : (await resolveState(db, validateName('state', filter.state))).id;
      }
      if (filter.group !== undefined)
        query.groupId = (await resolveGroup(db, validateName('group', filter.group))).id;
      if (filter.active !== undefined) query.active = validateFlag('active', filter.active);
      if (filter.search !== undefined) query.search = validateSearch(filter.search);
      for (const key of ['limit', 'offset'] as const) {
        const value = filter[key];
        if (value === undefined) continue;
        if (!Number.isSafeInteger(value) || value < 0)
          throw invalid(`invalid ${key} ${quote(value)}: expected a whole number ≥ 0`);
        query[key] = value;
      }
      return queries.selectProfiles(db, query);
    },

    listStates() {
      return queries.selectStateSummaries(db);
    },

    listGroups() {
      return queries.selectGroupSummaries(db);
    },

    findStateByName(name) {
      return queries.selectStateByName(db, validateName('state', name));
    },

    findGroupByName(name) {
      return queries.selectGroupByName(db, validateName('group', name));
    },

    async verifyPassword(username, password): Promise<PasswordCheck> {
      let user: UserRow | undefined;
      try {
        user = await queries.selectUser(db, { username: normalizeUsername(username) });
      } catch (error) {
        if (!(error instanceof DirectoryError)) throw error;
      }
      const usable = typeof password === 'string' && password.length <= 4096 && !password.includes('\0');
      // One argon2 verification whatever happens, so that timing tells nothing about the username.
      const hash = user?.password_hash ?? (await dummyHash());
      const matches = await passwordMatches(hash, usable ? password : '');
      if (!user || user.password_hash === null || !usable || !matches) return { outcome: 'invalid' };
      if (user.active !== 1) return { outcome: 'inactive', user };
      if (passwordNeedsRehash(user.password_hash)) {
        const rehashed = await hashPassword(password);
        await db
          .updateTable('app_user')
          .set({ password_hash: rehashed })
          .where('id', '=', user.id)
          .where('password_hash', '=', user.password_hash)
          .execute();
      }
      return { outcome: 'valid', user };
    },

    async ensureBootstrapSuperuser(options): Promise<BootstrapLogin | null> {
      // Two instances starting at once both try `admin`; the loser's insert conflicts, it retries
      // and then finds the winner's superuser.
      for (let attempt = 0; attempt < 5; attempt += 1) {
        if (await queries.hasActiveSuperuser(db)) return null;
        const password = generatePassword();
        const passwordHash = await hashPassword(password);
        let username: string | null;
        try {
          username = await change({ actor: options?.actor ?? 'bootstrap' }, async (trx, emit) => {
            // Read the taken names first, then look for a superuser: under PostgreSQL's read committed
            // a racing start that committed `admin` in between is then seen as the superuser it is,
            // never mistaken for a plain user whose name forces `admin-1`.
            const taken = new Set(await queries.selectUsernamesLike(trx, BOOTSTRAP_USERNAME));
            if (await queries.hasActiveSuperuser(trx)) return null;
            let candidate = BOOTSTRAP_USERNAME;
            for (let n = 1; taken.has(candidate); n += 1) candidate = `${BOOTSTRAP_USERNAME}-${n}`;
            const profile = await insertUser(
              trx,
              emit,
              {
                username: candidate,
                values: { superuser: 1, active: 1, email: '', email_verified: 0, oidc_access: 0 },
                state: null,
                groups: [],
              },
              passwordHash,
            );
            return profile.user.username;
          });
        } catch (error) {
          if (error instanceof DirectoryError && error.code === 'conflict') continue;
          throw error;
        }
        if (username === null) return null;
        logger?.warn(
          { username },
          'created the bootstrap superuser; its password is shown once on standard output',
        );
        return { username, password };
      }
      throw conflict(
        'could not create the bootstrap superuser: concurrent attempts kept conflicting; try again',
      );
    },
  };
  return service;
}
