import type { UserProfile } from '../directory/port.ts';
import { assertNever } from '../util/assert-never.ts';
import {
  decide,
  passesGlobalGate,
  type PolicyApplication,
  type PolicyDecision,
  whitelists,
} from './decide.ts';

/** Where the user's `oidc_access` comes from (empty when nowhere). */
export type AccessSource = 'superuser' | 'user' | 'state' | 'group';

/**
 * `aa-oidc policy show`: the decision for one user and one application, layer by layer, with what
 * the user lacks. For operators only (it names the application and its whitelists).
 */
export interface PolicyExplanation {
  clientId: string;
  username: string;
  decision: PolicyDecision['outcome'];
  /** The deny reason (`global`, `app`, `app_unusable`), or how access is granted (`via_state`, …). */
  reason: string;
  /** One sentence for a person. */
  explanation: string;
  appActive: boolean;
  userActive: boolean;
  superuser: boolean;
  globalGate: 'pass' | 'fail';
  accessVia: AccessSource[];
  userState: string | null;
  userGroups: string[];
  appStates: string[];
  appGroups: string[];
  /** States that would let the user through the layer that refuses (any one of them suffices). */
  neededStates: string[];
  /** Groups that would let the user through the layer that refuses (any one of them suffices). */
  neededGroups: string[];
}

/** The states and groups that carry `oidc_access` (what the global gate would need). */
export interface AccessGrantingNames {
  states: string[];
  groups: string[];
}

export function accessSources(profile: UserProfile): AccessSource[] {
  const sources: AccessSource[] = [];
  if (profile.superuser) sources.push('superuser');
  if (profile.oidcAccess) sources.push('user');
  if (profile.state?.oidcAccess) sources.push('state');
  if (profile.groups.some((group) => group.oidcAccess)) sources.push('group');
  return sources;
}

/** Pure: the explanation of `decide(profile, app)`. */
export function explainDecision(
  profile: UserProfile,
  app: PolicyApplication,
  granting: AccessGrantingNames,
): PolicyExplanation {
  const decision = decide(profile, app);
  const groupNames = profile.groups.map((group) => group.name);
  const base = {
    clientId: app.clientId,
    username: profile.username,
    decision: decision.outcome,
    appActive: app.active,
    userActive: profile.active,
    superuser: profile.superuser,
    globalGate: passesGlobalGate(profile) ? ('pass' as const) : ('fail' as const),
    accessVia: accessSources(profile),
    userState: profile.state?.name ?? null,
    userGroups: groupNames,
    appStates: [...app.states],
    appGroups: [...app.groups],
  };
  const nothingNeeded = { neededStates: [], neededGroups: [] };
  switch (decision.outcome) {
    case 'allow':
      return {
        ...base,
        ...nothingNeeded,
        reason: `via_${decision.via}`,
        explanation: allowedBecause(decision.via, profile, app),
      };
    case 'deny':
      switch (decision.reason) {
        case 'global':
          return {
            ...base,
            reason: 'global',
            neededStates: profile.active ? granting.states : [],
            neededGroups: profile.active ? granting.groups : [],
            explanation: !profile.active
              ? 'denied by the global gate: the user is deactivated'
              : 'denied by the global gate: the user is not a superuser and holds oidc_access neither directly, nor through the state, nor through a group',
          };
        case 'app_unusable':
          return {
            ...base,
            ...nothingNeeded,
            reason: 'app_unusable',
            explanation: 'denied: the application is deactivated (its kill switch is on)',
          };
        case 'app': {
          const held = new Set(groupNames);
          return {
            ...base,
            reason: 'app',
            neededStates: [...app.states],
            neededGroups: app.groups.filter((name) => !held.has(name)),
            explanation: `denied by the application's whitelists: the user's state (${profile.state?.name ?? 'none'}) is not among its states and none of the user's groups is among its groups`,
          };
        }
        case 'no_client':
          // The caller loads the application first; kept for the exhaustive switch.
          return {
            ...base,
            ...nothingNeeded,
            reason: 'no_client',
            explanation: 'denied: no such application',
          };
        default:
          return assertNever(decision);
      }
    default:
      return assertNever(decision);
  }
}

function allowedBecause(
  via: Extract<PolicyDecision, { outcome: 'allow' }>['via'],
  profile: UserProfile,
  app: PolicyApplication,
): string {
  switch (via) {
    case 'superuser':
      return 'allowed: superusers pass every whitelist';
    case 'account_console':
      return 'allowed: the built-in account console admits every active user';
    case 'open_app':
      return 'allowed: the application whitelists no state and no group, so everyone past the global gate may use it';
    case 'state':
      return `allowed: the user's state ${profile.state?.name ?? ''} is whitelisted`;
    case 'group':
      return `allowed: the user's group ${profile.groups.find((group) => whitelists(app.groups, group.name))?.name ?? ''} is whitelisted`;
    case 'usable_app':
      return 'allowed: the application is usable';
    default:
      return assertNever(via);
  }
}
