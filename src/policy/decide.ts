import type { Application } from '../applications/types.ts';
import type { UserProfile } from '../directory/types.ts';

/**
 * The access decision of section D. A global deny carries nothing about the application, so that
 * what a refused user sees can never be used to enumerate applications or their whitelists.
 */
export type PolicyDecision =
  | { outcome: 'allow'; via: 'superuser' | 'open_app' | 'state' | 'group' }
  | { outcome: 'deny'; reason: 'global' }
  | { outcome: 'deny'; reason: 'no_client' }
  | { outcome: 'deny'; reason: 'app_unusable'; clientId: string }
  | { outcome: 'deny'; reason: 'app'; clientId: string };

export type DenyReason = Extract<PolicyDecision, { outcome: 'deny' }>['reason'];

/** The application fields the policy reads. */
export type PolicyApplication = Pick<Application, 'clientId' | 'active' | 'states' | 'groups'>;

/** Global gate: the user is active, and is a superuser or holds `oidc_access` by state, group or directly. */
export function passesGlobalGate(profile: UserProfile): boolean {
  const { user, state, groups } = profile;
  if (user.active !== 1) return false;
  if (user.superuser === 1) return true;
  return (
    user.oidc_access === 1 || state?.oidc_access === 1 || groups.some((group) => group.oidc_access === 1)
  );
}

/**
 * `decide(user, app)`: pure, no I/O. The global gate is judged first and its refusal names no app;
 * then the app must exist and be active; then its whitelists (superusers pass; both empty = open;
 * otherwise the state is whitelisted OR one of the groups is).
 */
export function decide(profile: UserProfile, app: PolicyApplication | null | undefined): PolicyDecision {
  if (!passesGlobalGate(profile)) return { outcome: 'deny', reason: 'global' };
  if (!app) return { outcome: 'deny', reason: 'no_client' };
  if (!app.active) return { outcome: 'deny', reason: 'app_unusable', clientId: app.clientId };
  if (profile.user.superuser === 1) return { outcome: 'allow', via: 'superuser' };
  if (app.states.length === 0 && app.groups.length === 0) return { outcome: 'allow', via: 'open_app' };
  if (profile.state && app.states.includes(profile.state.name)) return { outcome: 'allow', via: 'state' };
  if (profile.groups.some((group) => app.groups.includes(group.name)))
    return { outcome: 'allow', via: 'group' };
  return { outcome: 'deny', reason: 'app', clientId: app.clientId };
}
