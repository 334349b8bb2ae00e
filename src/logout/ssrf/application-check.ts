import { backchannelSyntaxProblem } from '../../applications/backchannel-target.ts';
import type { BackchannelTargetCheck } from '../../applications/types.ts';
import type { Config } from '../../config/load.ts';
import { type Resolver, systemResolver } from './resolver.ts';
import { checkBackchannelTarget, type GateOptions } from './target-gate.ts';

/**
 * The application write path's back-channel URI check (for back-channel logout): the syntactic check of
 * src/applications first (scheme, credentials, fragment), then the full SSRF gate.
 */
export function backchannelTargetCheck(
  options: GateOptions,
  /** Said after a refused private target: how this configuration could allow it. */
  privateTargetsHint?: string,
): BackchannelTargetCheck {
  return async (uri) => {
    // A new URI only: an unchanged one passes the syntactic check alone (applications/service.ts).
    // A malformed %-escape or a host no DNS name can be was refused before (applications/validate.ts).
    const syntax = backchannelSyntaxProblem(uri, options.mode);
    if (syntax !== null) return { ok: false, reason: syntax };
    const verdict = await checkBackchannelTarget(uri, options);
    if (verdict.ok) return { ok: true };
    const hint = verdict.reason === 'unsafe_target_ip' && privateTargetsHint ? `; ${privateTargetsHint}` : '';
    return { ok: false, reason: `is refused by the SSRF gate (${verdict.reason}): ${verdict.detail}${hint}` };
  };
}

/**
 * Whether the gate lets private targets through: the development escape hatch
 * (`logout.allowPrivateTargets`), and in production only with its acknowledgement
 * (`logout.allowPrivateTargetsInProduction`, check E006). Every process applies this one rule: the
 * application writes, `serve`'s and `worker`'s deliveries, `bcl test`.
 */
export function privateTargetsAllowed(config: Config): boolean {
  return (
    config.logout.allowPrivateTargets &&
    (config.mode !== 'production' || config.logout.allowPrivateTargetsInProduction)
  );
}

/** What to tell an operator whose private target was refused only because of production (E006). */
export function privateTargetsHint(config: Config): string | undefined {
  if (config.logout.allowPrivateTargets && !privateTargetsAllowed(config))
    return (
      'in production, AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS takes effect only with ' +
      'AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION=true (check E006)'
    );
  return undefined;
}

/** The gate options a configuration implies; the system resolver unless one is injected. */
export function gateOptionsFor(config: Config, resolver: Resolver = systemResolver): GateOptions {
  return {
    mode: config.mode,
    allowPrivateTargets: privateTargetsAllowed(config),
    resolver,
    dnsTimeoutMs: config.logout.dnsTimeoutMs,
  };
}
