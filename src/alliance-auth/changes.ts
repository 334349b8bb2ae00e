import type { DirectoryChange, UserProfile } from '../directory/port.ts';
import { assertNever } from '../util/assert-never.ts';
import { NO_CHARACTER } from './directory.ts';
import type { AllianceAuthChange, Fingerprints, UserFingerprint } from './fingerprint.ts';
import { byName } from './user-queries.ts';

/**
 * What a poll cycle found, as the directory port's lifecycle changes: the same values the built-in
 * directory publishes, so that revocation, back-channel logout and ended sessions follow Alliance
 * Auth's changes exactly as they follow an operator's.
 *
 * `before` and `after` are built from the two cycles' fingerprints, which hold everything the access
 * decision reads: active, superuser, the state's and groups' names, and whether the user holds the
 * access permission (carried as the user's own `oidcAccess`: the global gate gives the same answer
 * whichever way it is held). Contact details and the main character's names are not in a
 * fingerprint; consumers needing them read the directory.
 */
export function profileFromFingerprint(userId: number, fingerprint: UserFingerprint): UserProfile {
  return {
    id: userId,
    username: fingerprint.username,
    email: '',
    emailVerified: false,
    active: fingerprint.active,
    superuser: fingerprint.superuser,
    oidcAccess: fingerprint.permission,
    locale: null,
    mainCharacter: { ...NO_CHARACTER, characterId: fingerprint.main?.characterId ?? null },
    state: fingerprint.state ? { name: fingerprint.state.name, priority: 0, oidcAccess: false } : null,
    groups: fingerprint.groups.map((group) => ({ name: group.name, oidcAccess: false })).sort(byName),
  };
}

/**
 * One user's changes of a cycle become one change of the port (a reactivation or a new password may come with a
 * second). A deletion or a deactivation stands alone: it already ends everything (every token
 * revoked, every application told), so the state and group changes that come with it in Alliance
 * Auth add nothing.
 */
export function toDirectoryChanges(
  changes: readonly AllianceAuthChange[],
  previous: Fingerprints,
  current: Fingerprints,
  options: {
    passwordLogin: boolean;
    /**
     * Users the previous cycle did not know who already hold a session, code or token here: they
     * signed in between the two cycles. One of them found inactive was deactivated meanwhile.
     */
    newUsersHeldHere?: ReadonlySet<number>;
  },
): DirectoryChange[] {
  const byUser = new Map<number, AllianceAuthChange[]>();
  for (const change of changes) {
    const list = byUser.get(change.userId) ?? [];
    list.push(change);
    byUser.set(change.userId, list);
  }
  const result: DirectoryChange[] = [];
  for (const [userId, list] of byUser) {
    const was = previous.get(userId);
    const now = current.get(userId);
    if (!was) {
      // A new user has nothing to take away, unless they signed in before AA deactivated them.
      if (now && !now.active && options.newUsersHeldHere?.has(userId)) {
        const after = profileFromFingerprint(userId, now);
        result.push({ kind: 'user_deactivated', userId, before: { ...after, active: true }, after });
      }
      continue;
    }
    const before = profileFromFingerprint(userId, was);
    if (!now) {
      result.push({ kind: 'user_deleted', userId, before });
      continue;
    }
    const after = profileFromFingerprint(userId, now);
    const kinds = new Set<Exclude<DirectoryChange['kind'], 'catalog_renamed' | 'catalog_deleted'>>();
    let passwordChanged = false;
    for (const change of list) {
      switch (change.kind) {
        case 'user_created':
        case 'user_deleted':
          break;
        case 'user_deactivated':
          kinds.add('user_deactivated');
          break;
        case 'user_activated':
          kinds.add('user_reactivated');
          break;
        case 'user_state_changed':
          kinds.add('user_state_changed');
          break;
        case 'user_group_added':
        case 'user_group_removed':
          kinds.add('user_groups_changed');
          break;
        case 'user_main_character_changed':
          kinds.add('user_main_character_changed');
          break;
        case 'user_password_changed':
          passwordChanged = true;
          break;
        case 'user_updated':
          // Superuser and the access permission are the user's own permissions (port.ts).
          if (change.fields.some((field) => field !== 'username')) kinds.add('user_groups_changed');
          break;
        default:
          assertNever(change);
      }
    }
    if (kinds.has('user_deactivated')) {
      result.push({ kind: 'user_deactivated', userId, before, after });
      continue;
    }
    if (kinds.has('user_reactivated')) result.push({ kind: 'user_reactivated', userId, before, after });
    // One change for the rest: `before` and `after` carry all of it, and each consumer judges the
    // whole difference (two changes would tell an application twice). The kind names the most
    // telling part: the state, then groups and permissions, then the main character.
    const kind = (['user_state_changed', 'user_groups_changed', 'user_main_character_changed'] as const).find(
      (candidate) => kinds.has(candidate),
    );
    if (kind) result.push({ kind, userId, before, after });
    // As the built-in directory's new password: the user's sessions end. Only where aa-oidc signs
    // people in with AA's passwords; otherwise AA's password has no bearing on a session here.
    if (passwordChanged && options.passwordLogin) result.push({ kind: 'user_password_changed', userId });
  }
  return result;
}

/**
 * A profile that every active application admits: what a user who signed in to an application
 * since the previous cycle is judged from. That cycle's fingerprint may predate the access they
 * signed in with (AA gave it and took it back between two cycles, or made the user meanwhile), and
 * the sign-in itself proves that the application admitted them then.
 */
function admittedAsSignedIn(profile: UserProfile): UserProfile {
  return { ...profile, active: true, superuser: true };
}

/**
 * The cycle's changes with the users who signed in to an application since the previous cycle
 * (`signedInSince`) judged by what they hold rather than by the previous fingerprint: each one who
 * lost anything meanwhile gets the change that takes it away, so that the applications they signed
 * in to are told and their tokens there revoked, as for a change the fingerprints show.
 *
 * - A state or group change of such a user is judged from a profile every application admits
 *   (an application the previous fingerprint did not admit may be one they signed in to since).
 * - Such a user with no change that already ends or judges everything: gone from AA (deleted before
 *   any cycle saw them) is a deletion; inactive (deactivated again after a reactivation no cycle
 *   saw) a deactivation; otherwise a change of groups, whose consumers take away only the
 *   applications the user is now refused (none when nothing was lost: nobody is told).
 */
export function judgeSignInsSinceLastCycle(
  userChanges: readonly DirectoryChange[],
  previous: Fingerprints,
  current: Fingerprints,
  signedInSince: ReadonlySet<number>,
): DirectoryChange[] {
  if (signedInSince.size === 0) return [...userChanges];
  const judged = new Set<number>();
  const result = userChanges.map((change): DirectoryChange => {
    switch (change.kind) {
      case 'user_deleted':
      case 'user_deactivated':
        judged.add(change.userId);
        return change;
      case 'user_state_changed':
      case 'user_groups_changed':
        if (!signedInSince.has(change.userId)) return change;
        judged.add(change.userId);
        return { ...change, before: admittedAsSignedIn(change.after) };
      default:
        return change;
    }
  });
  for (const userId of [...signedInSince].sort((a, b) => a - b)) {
    if (judged.has(userId)) continue;
    const now = current.get(userId);
    if (!now) {
      // Known to the previous cycle, the deletion is among the changes already.
      if (previous.has(userId)) continue;
      const before = profileFromFingerprint(userId, {
        username: '',
        active: true,
        superuser: true,
        state: null,
        groups: [],
        main: null,
        permission: true,
      });
      result.push({ kind: 'user_deleted', userId, before });
      continue;
    }
    const after = profileFromFingerprint(userId, now);
    if (!now.active) {
      result.push({ kind: 'user_deactivated', userId, before: { ...after, active: true }, after });
      continue;
    }
    result.push({ kind: 'user_groups_changed', userId, before: admittedAsSignedIn(after), after });
  }
  return result;
}
