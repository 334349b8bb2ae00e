import { backchannelSyntaxProblem } from '../../applications/backchannel-target.ts';
import type { BackchannelTargetCheck } from '../../applications/types.ts';
import type { Config } from '../../config/load.ts';
import { type Resolver, systemResolver } from './resolver.ts';
import { checkBackchannelTarget, type GateOptions } from './target-gate.ts';

/**
 * The application write path's back-channel URI check (for back-channel logout): the syntactic check of
 * src/applications first (scheme, credentials, fragment), then the full SSRF gate.
 */
export function backchannelTargetCheck(options: GateOptions): BackchannelTargetCheck {
  return async (uri) => {
    const syntax = backchannelSyntaxProblem(uri, options.mode);
    if (syntax !== null) return { ok: false, reason: syntax };
    const verdict = await checkBackchannelTarget(uri, options);
    if (verdict.ok) return { ok: true };
    return { ok: false, reason: `is refused by the SSRF gate (${verdict.reason}): ${verdict.detail}` };
  };
}

/** The gate options a configuration implies; the system resolver unless one is injected. */
export function gateOptionsFor(config: Config, resolver: Resolver = systemResolver): GateOptions {
  return {
    mode: config.mode,
    allowPrivateTargets: config.logout.allowPrivateTargets,
    resolver,
    dnsTimeoutMs: config.logout.dnsTimeoutMs,
  };
}
