import type { Application } from '../applications/types.ts';
import type { AuditBus } from '../audit/bus.ts';
import type { Directory, UserProfile } from '../directory/port.ts';
import type { Metrics } from '../metrics/registry.ts';
import { assertNever } from '../util/assert-never.ts';
import { decide, decideApplication, type PolicyDecision } from '../policy/decide.ts';
import { isAuthorizationStage, type PolicyStage } from '../policy/stages.ts';
import { createDenialCoalescer, type DenialCoalescingLimits } from './denial-coalescing.ts';
import { RequestMemo } from './request-memo.ts';

/** What enforcing needs: where users and applications come from, and where refusals are counted. */
export interface PolicyEnforcerDependencies {
  directory: Pick<Directory, 'profileById'>;
  applications: { findByClientId(clientId: string): Promise<Application | undefined> };
  /**
   * Where the `save_bearer` stage reads the application: current as of immediately before tokens
   * are saved (the change epoch read afresh, change-epoch-cache.ts), even where `applications`
   * shares one lookup across a request (src/oidc/request-applications.ts). Defaults to `applications`.
   */
  applicationsAtSave?: { findByClientId(clientId: string): Promise<Application | undefined> };
  /**
   * Where the `save_bearer` stage reads the user: likewise current as of immediately before tokens are
   * saved, where `directory` answers from profiles kept in memory (src/oidc/kept-profiles.ts).
   * Defaults to `directory`.
   */
  directoryAtSave?: Pick<Directory, 'profileById'>;
  /**
   * Where the `save_bearer` stage of a client-credentials token reads the application when its token
   * is written at the epoch the request saw (`EnforceOptions.applicationAsOfRequest`): the
   * applications kept for that epoch, whose entries are at least as new as it (change-epoch-cache.ts).
   * Defaults to `applications`.
   */
  applicationsAsOfRequest?: { findByClientId(clientId: string): Promise<Application | undefined> };
  metrics: Pick<Metrics, 'policyRejections' | 'authorizeDenied'>;
  audit: Pick<AuditBus, 'publish'>;
  /** How refusals provoked without a credential are coalesced (default `DENIAL_COALESCING`). */
  coalescing?: DenialCoalescingLimits;
}

/**
 * Who asks: a user for an application (by the provider's account id, or with the profile already
 * loaded in this request), or an application alone (`client_credentials`: no user, so only the
 * app-usability layer applies).
 */
export type PolicySubject =
  | { kind: 'user'; clientId: string; accountId: string; profile?: UserProfile }
  | { kind: 'client'; clientId: string };

export type PolicyDenial = Extract<PolicyDecision, { outcome: 'deny' }>;

/**
 * The request a check belongs to (the Koa context): refusals are recorded once per request and
 * stage, and carry its request id.
 */
export type PolicyRequest = object;

export interface PolicyEnforcer {
  /**
   * Loads the user (unless given) from the directory and the application (current as of this request), decides, and records a
   * refusal (`aa_oidc_policy_rejections_total{stage,reason}`, a `policy_denied` event, and for the
   * authorization stages `aa_oidc_authorize_denied_total{reason}`).
   */
  enforce(
    stage: PolicyStage,
    subject: PolicySubject,
    request?: PolicyRequest,
    options?: EnforceOptions,
  ): Promise<PolicyDecision>;
  /**
   * Records a refusal decided elsewhere (the client lookup's app-usability refusal). Refusals at the
   * authorization stages, and those marked `unauthenticated` (a deactivated public application at the
   * token and introspection endpoints), are published through the coalescing of
   * denial-coalescing.ts: any caller can provoke them, as often as it likes.
   */
  recordDenial(
    stage: PolicyStage,
    denial: PolicyDenial,
    who: { clientId: string | null; userId: number | null },
    request?: PolicyRequest,
    options?: { unauthenticated?: boolean },
  ): void;
  /** Publishes the counts of coalesced refusals still held: at shutdown, before the audit bus closes. */
  close(): void;
}

export interface EnforceOptions {
  /**
   * The `save_bearer` stage of a client-credentials token: the application as of the change epoch
   * this request saw (`applicationsAsOfRequest`) instead of a fresh read (`applicationsAtSave`). The
   * token is then written only while that epoch stands (save-bearer.ts): the same check, made by the
   * write itself.
   */
  applicationAsOfRequest?: boolean;
}

const ACCOUNT_ID = /^[1-9][0-9]{0,15}$/;

/** The user id behind a provider account id, or null for anything that is not one of ours. */
export function userIdOf(accountId: string | undefined): number | null {
  return accountId !== undefined && ACCOUNT_ID.test(accountId) ? Number(accountId) : null;
}

export function createPolicyEnforcer(deps: PolicyEnforcerDependencies): PolicyEnforcer {
  // One record of each refusal per request and stage.
  const recorded = new RequestMemo<string, true>();
  const coalesced = createDenialCoalescer(deps.audit, deps.coalescing);

  const recordDenial: PolicyEnforcer['recordDenial'] = (stage, denial, who, request, options) => {
    if (request) {
      const key = `${stage} ${denial.reason} ${who.clientId ?? ''} ${who.userId ?? ''}`;
      if (recorded.peek(request, key)) return;
      recorded.set(request, key, true);
    }
    deps.metrics.policyRejections.inc({ stage, reason: denial.reason });
    const authorization = isAuthorizationStage(stage);
    if (authorization) deps.metrics.authorizeDenied.inc({ reason: denial.reason });
    const audit = authorization || options?.unauthenticated === true ? coalesced : deps.audit;
    audit.publish(
      {
        kind: 'policy_denied',
        client_id: denial.reason === 'no_client' ? null : who.clientId,
        user_id: who.userId,
        stage,
        reason: denial.reason,
      },
      requestIdOf(request),
    );
  };

  // Not async functions: a token request asks at two stages, and each ask is a chain on the lookups'
  // promises rather than a frame of its own awaiting them.
  const decideNow = (
    stage: PolicyStage,
    subject: PolicySubject,
    options: EnforceOptions | undefined,
  ): Promise<PolicyDecision> => {
    const atSave = stage === 'save_bearer';
    const applications = !atSave
      ? deps.applications
      : options?.applicationAsOfRequest === true
        ? (deps.applicationsAsOfRequest ?? deps.applications)
        : (deps.applicationsAtSave ?? deps.applications);
    const directory = atSave ? (deps.directoryAtSave ?? deps.directory) : deps.directory;
    switch (subject.kind) {
      case 'client':
        return applications.findByClientId(subject.clientId).then(decideApplication);
      case 'user': {
        // A profile already loaded (findAccount's) needs no second look: only the application is awaited.
        const loaded = subject.profile;
        if (loaded) return applications.findByClientId(subject.clientId).then((app) => decide(loaded, app));
        const userId = userIdOf(subject.accountId);
        // The application and the user are read at once (on PostgreSQL, two queries in flight).
        return Promise.all([
          applications.findByClientId(subject.clientId),
          userId === null ? undefined : directory.profileById(userId),
        ]).then(([app, profile]) =>
          // An unknown user passes no gate; like every global deny, this names no application.
          profile ? decide(profile, app) : { outcome: 'deny', reason: 'global' },
        );
      }
      default:
        return assertNever(subject);
    }
  };

  return {
    recordDenial,
    close: () => coalesced.flush(),
    enforce(stage, subject, request, options) {
      const recorded = (decision: PolicyDecision): PolicyDecision => {
        switch (decision.outcome) {
          case 'allow':
            return decision;
          case 'deny':
            recordDenial(
              stage,
              decision,
              {
                clientId: subject.clientId,
                userId: subject.kind === 'user' ? userIdOf(subject.accountId) : null,
              },
              request,
            );
            return decision;
          default:
            return assertNever(decision);
        }
      };
      try {
        return decideNow(stage, subject, options).then(recorded);
      } catch (error) {
        return Promise.reject(error as Error);
      }
    },
  };
}

function requestIdOf(request: PolicyRequest | undefined): { requestId?: string } {
  const requestId = (request as { state?: { requestId?: unknown } } | undefined)?.state?.requestId;
  return typeof requestId === 'string' ? { requestId } : {};
}
