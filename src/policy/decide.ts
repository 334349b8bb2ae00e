import type { Application } from '../applications/types.ts';
import type { UserProfile } from '../directory/port.ts';
import { assertNever } from '../util/assert-never.ts';

/**
 * The access decision. A global deny carries nothing about the application, so that
 * what a refused user sees can never be used to enumerate applications or their whitelists.
 */
export type PolicyDecision =
  /** `usable_app`: no user was judged (a `client_credentials` token), only the app-usability layer. */
  | {
      outcome: 'allow';
      via: 'superuser' | 'open_app' | 'state' | 'group' | 'usable_app' | 'account_console';
    }
  | { outcome: 'deny'; reason: 'global' }
  | { outcome: 'deny'; reason: 'no_client' }
  | { outcome: 'deny'; reason: 'app_unusable'; clientId: string }
  | { outcome: 'deny'; reason: 'app'; clientId: string };

export type DenyReason = Extract<PolicyDecision, { outcome: 'deny' }>['reason'];

/**
 * The app-usability layer alone, for what has no user: a `client_credentials` token, a client
 * lookup. A member of `PolicyDecision`, so every consumer handles both with one switch.
 */
export type ApplicationDecision =
  { outcome: 'allow'; via: 'usable_app' } | Extract<PolicyDecision, { reason: 'no_client' | 'app_unusable' }>;

/**
 * The application fields the policy reads. `admitsEveryActiveUser` is set only on the built-in
 * account console (src/applications/account-console.ts): every active user may sign in to it.
 */
export type PolicyApplication = Pick<Application, 'clientId' | 'active' | 'states' | 'groups'> & {
  admitsEveryActiveUser?: boolean;
};

/** Global gate: the user is active, and is a superuser or holds `oidc_access` by state, group or directly. */
export function passesGlobalGate(profile: UserProfile): boolean {
  if (!profile.active) return false;
  if (profile.superuser) return true;
  return (
    profile.oidcAccess ||
    profile.state?.oidcAccess === true ||
    profile.groups.some((group) => group.oidcAccess)
  );
}

/**
 * Whitelists name states and groups exactly as the directory spells them (an application's names are
 * stored in the directory's spelling when it is saved, and follow renames), so they are matched
 * exactly: Alliance Auth on PostgreSQL may hold `Directors` and an open `directors` side by side,
 * and whitelisting one must not admit the other's members.
 */
export function whitelists(names: readonly string[], name: string): boolean {
  return names.includes(name);
}

/** App usability: the application exists and is active (its kill switch is off). */
export function decideApplication(app: PolicyApplication | null | undefined): ApplicationDecision {
  if (!app) return { outcome: 'deny', reason: 'no_client' };
  if (!app.active) return { outcome: 'deny', reason: 'app_unusable', clientId: app.clientId };
  return { outcome: 'allow', via: 'usable_app' };
}

/**
 * `decide(user, app)`: pure, no I/O. The global gate is judged first and its refusal names no app;
 * then the app must exist and be active; then its whitelists (superusers pass; both empty = open;
 * otherwise the state is whitelisted OR one of the groups is).
 */
export function decide(profile: UserProfile, app: PolicyApplication | null | undefined): PolicyDecision {
  return judge(profile, app, undefined);
}

/**
 * `decide` for many users against the same applications: a state or group change of every member
 * (thousands, each in hundreds of groups) judged against the active applications (each whitelisting
 * up to 200 groups). Each application's whitelisted groups are read into a set the first time it is
 * judged, so that a user's groups are each looked up once rather than compared with every
 * whitelisted name. Keyed by the application object: give it the applications read for the change.
 * Per request `decide` compares in place, with no set to build.
 */
export function decideForMany(): typeof decide {
  const whitelistedGroups = new WeakMap<PolicyApplication, ReadonlySet<string>>();
  return (profile, app) => {
    if (!app) return judge(profile, app, undefined);
    let groups = whitelistedGroups.get(app);
    if (!groups) whitelistedGroups.set(app, (groups = new Set(app.groups)));
    return judge(profile, app, groups);
  };
}

function judge(
  profile: UserProfile,
  app: PolicyApplication | null | undefined,
  whitelistedGroups: ReadonlySet<string> | undefined,
): PolicyDecision {
  if (app?.admitsEveryActiveUser === true && app.active && profile.active)
    return { outcome: 'allow', via: 'account_console' };
  if (!passesGlobalGate(profile)) return { outcome: 'deny', reason: 'global' };
  if (!app) return { outcome: 'deny', reason: 'no_client' };
  if (!app.active) return { outcome: 'deny', reason: 'app_unusable', clientId: app.clientId };
  if (profile.superuser) return { outcome: 'allow', via: 'superuser' };
  if (app.states.length === 0 && app.groups.length === 0) return { outcome: 'allow', via: 'open_app' };
  if (profile.state && whitelists(app.states, profile.state.name)) return { outcome: 'allow', via: 'state' };
  if (
    profile.groups.some((group) =>
      whitelistedGroups ? whitelistedGroups.has(group.name) : whitelists(app.groups, group.name),
    )
  )
    return { outcome: 'allow', via: 'group' };
  return { outcome: 'deny', reason: 'app', clientId: app.clientId };
}

/** True for an allow, false for a deny; the exhaustive switch every consumer of a decision ends in. */
export function isAllowed(decision: PolicyDecision): boolean {
  switch (decision.outcome) {
    case 'allow':
      return true;
    case 'deny':
      return false;
    default:
      return assertNever(decision);
  }
}
