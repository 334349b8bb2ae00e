import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Every metric aa-oidc exports, defined once, with fixed label sets. Label values are bounded
 * (client ids, grant types, reasons, outcomes): no user id, username, token or address ever becomes
 * a label.
 */
export interface Metrics {
  /** A private registry per app, so that two apps in one process never share or collide. */
  registry: Registry;
  /** One per access token issued; `format` is `opaque` or `jwt`. */
  tokensIssued: Counter<'client_id' | 'grant_type' | 'format'>;
  /** Authorization requests the access policy refused, by reason (`global`, `app`, `app_unusable`, …). */
  authorizeDenied: Counter<'reason'>;
  /** Access-policy refusals by stage (src/policy/stages.ts: `authorize` … `save_bearer`) and reason. */
  policyRejections: Counter<'stage' | 'reason'>;
  /** A presented authorization code that has no issued-code audit row (never issued, or purged). */
  codeReuseAuditMisses: Counter<'client_id'>;
  /** An audit receiver that threw, rejected or timed out; `signal` is the event kind. */
  auditReceiverFailures: Counter<'signal' | 'receiver'>;
  /**
   * Back-channel logout deliveries by final outcome (`success`, `retries_exhausted`, …), and
   * `cancelled`: queued logouts dropped unsent, their application no longer receiving them.
   */
  bclDispatches: Counter<'client_id' | 'outcome'>;
  /** Time from the first delivery attempt of a back-channel logout to its final outcome. */
  bclDeliverySeconds: Histogram<'outcome'>;
  /**
   * Authentications of a client whose secret was imported from the Python plugin as a PBKDF2 hash,
   * by outcome: `verified` and `wrong` ran PBKDF2; `digest` (the hash replaced meanwhile), `too_costly`,
   * `busy`, `throttled` and `none` did not (src/oidc/imported-secret-gate.ts).
   */
  importedSecretChecks: Counter<'client_id' | 'outcome'>;
  /**
   * Requests to the token, introspection or revocation endpoint answered `invalid_client`, by
   * `endpoint` and `client_id`: the application's id when the request named one (active or
   * deactivated), else `unknown` (src/oidc/client-auth-failures.ts).
   */
  clientAuthFailures: Counter<'endpoint' | 'client_id'>;
  /**
   * Alliance Auth poll cycles by outcome (src/alliance-auth/poller.ts's `PollOutcome`: `baseline`
   * and `applied` completed; `not_leader` left it to the instance holding the lease; `aa_unreachable`,
   * `aa_timed_out`, `aa_schema_error`, `refused_empty`, `lease_lost`, `other_directory` and `failed`
   * did not).
   */
  aaPollCycles: Counter<'outcome'>;
  /**
   * When a poll cycle of any instance last completed (the lease row's `last_success_at`, which every
   * instance reads each cycle), in seconds since the epoch; 0 until this process has read it.
   */
  aaPollLastSuccess: Gauge;
}

export const METRIC_NAMES = [
  'aa_oidc_tokens_issued_total',
  'aa_oidc_authorize_denied_total',
  'aa_oidc_policy_rejections_total',
  'aa_oidc_code_reuse_audit_misses_total',
  'aa_oidc_audit_receiver_failures_total',
  'aa_oidc_bcl_dispatches_total',
  'aa_oidc_bcl_delivery_seconds',
  'aa_oidc_imported_secret_checks_total',
  'aa_oidc_client_auth_failures_total',
  'aa_oidc_aa_poll_cycles_total',
  'aa_oidc_aa_poll_last_success_timestamp_seconds',
] as const;

export type MetricName = (typeof METRIC_NAMES)[number];

/**
 * The aa-oidc metrics a process without the provider (`aa-oidc worker`) moves: its back-channel
 * logout deliveries, and its audit receivers (each delivery publishes `logout_dispatched`).
 */
export const WORKER_METRIC_NAMES: readonly MetricName[] = [
  'aa_oidc_audit_receiver_failures_total',
  'aa_oidc_bcl_dispatches_total',
  'aa_oidc_bcl_delivery_seconds',
];

/**
 * A registry of the process metrics in `metrics` and of the named aa-oidc metrics only (the same
 * metric objects, so their values): what a process exports when it never moves the others.
 */
export function registryOf(metrics: Metrics, names: readonly MetricName[]): Registry {
  const registry = Registry.merge([metrics.registry]);
  for (const name of METRIC_NAMES) if (!names.includes(name)) registry.removeSingleMetric(name);
  return registry;
}

export interface MetricsOptions {
  /** Collect Node's default process metrics into the registry (default true). */
  defaultMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    tokensIssued: new Counter({
      name: 'aa_oidc_tokens_issued_total',
      help: 'Access tokens issued, by client, grant type and access-token format.',
      labelNames: ['client_id', 'grant_type', 'format'] as const,
      registers,
    }),
    authorizeDenied: new Counter({
      name: 'aa_oidc_authorize_denied_total',
      help: 'Authorization requests refused by aa-oidc, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    policyRejections: new Counter({
      name: 'aa_oidc_policy_rejections_total',
      help: 'Access-policy refusals, by the flow stage that asked and the reason.',
      labelNames: ['stage', 'reason'] as const,
      registers,
    }),
    codeReuseAuditMisses: new Counter({
      name: 'aa_oidc_code_reuse_audit_misses_total',
      help: 'Authorization codes presented that have no issued-code audit row, by client.',
      labelNames: ['client_id'] as const,
      registers,
    }),
    auditReceiverFailures: new Counter({
      name: 'aa_oidc_audit_receiver_failures_total',
      help: 'Audit receivers that threw, rejected or timed out, by event kind (signal) and receiver.',
      labelNames: ['signal', 'receiver'] as const,
      registers,
    }),
    bclDispatches: new Counter({
      name: 'aa_oidc_bcl_dispatches_total',
      help: 'Back-channel logout deliveries by client and final outcome (cancelled: queued, then dropped unsent because the application no longer receives them).',
      labelNames: ['client_id', 'outcome'] as const,
      registers,
    }),
    bclDeliverySeconds: new Histogram({
      name: 'aa_oidc_bcl_delivery_seconds',
      help: 'Seconds from the first back-channel logout delivery attempt to its final outcome.',
      labelNames: ['outcome'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600],
      registers,
    }),
    importedSecretChecks: new Counter({
      name: 'aa_oidc_imported_secret_checks_total',
      help: 'Authentications of clients whose secret is still a PBKDF2 hash imported from the Python plugin, by client and outcome (verified and wrong ran PBKDF2).',
      labelNames: ['client_id', 'outcome'] as const,
      registers,
    }),
    clientAuthFailures: new Counter({
      name: 'aa_oidc_client_auth_failures_total',
      help: 'Failed client authentications (invalid_client) at the token, introspection and revocation endpoints, by endpoint and client (unknown for an id that names no application).',
      labelNames: ['endpoint', 'client_id'] as const,
      registers,
    }),
    aaPollCycles: new Counter({
      name: 'aa_oidc_aa_poll_cycles_total',
      help: 'Alliance Auth poll cycles by outcome (baseline and applied completed; not_leader left it to the instance holding the lease).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    aaPollLastSuccess: new Gauge({
      name: 'aa_oidc_aa_poll_last_success_timestamp_seconds',
      help: "When a poll cycle of any instance last completed and stored Alliance Auth's state (seconds since the epoch; 0 until this process has read it).",
      registers,
    }),
  };
}
