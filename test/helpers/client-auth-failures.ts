import assert from 'node:assert/strict';
import type { LeakHarness } from './leak-harness.ts';
import type { TestServer } from './server.ts';

/**
 * What the tests of failed client authentication share (src/oidc/client-auth-failures.ts): the
 * endpoints that authenticate their caller, a form each reads past that, and what a failure leaves in
 * the log and the metric.
 */

/** The endpoints that authenticate their caller (RFC 6749 §2.3), by the name the metric and log give them. */
export const CLIENT_AUTH_ENDPOINTS = {
  token: '/o/token/',
  introspection: '/o/introspect/',
  revocation: '/o/revoke_token/',
} as const;
export type ClientAuthEndpoint = keyof typeof CLIENT_AUTH_ENDPOINTS;
export const CLIENT_AUTH_ENDPOINT_NAMES = Object.keys(CLIENT_AUTH_ENDPOINTS) as ClientAuthEndpoint[];

/** A form `endpoint` reads past client authentication: a grant or a token no one was issued. */
export function neverIssuedForm(endpoint: ClientAuthEndpoint): Record<string, string> {
  return endpoint === 'token'
    ? { grant_type: 'refresh_token', refresh_token: 'never-issued' }
    : { token: 'never-issued' };
}

/** The same form as a request body (`application/x-www-form-urlencoded`). */
export function neverIssuedBody(endpoint: ClientAuthEndpoint): string {
  return new URLSearchParams(neverIssuedForm(endpoint)).toString();
}

/** The log message of a failed client authentication, and `invalid_client`'s description. */
export const CLIENT_AUTH_FAILED = 'client authentication failed';

/** A log line of a failed client authentication; the fields after `authMethod` depend on the reason. */
export interface ClientAuthFailureLine {
  msg: string;
  level: number;
  endpoint: string;
  reason: string;
  clientId: string | null;
  authMethod: string;
  address: string;
  requestId: string;
  registeredAuthMethod?: string;
  proof?: string;
  unknownClientIdLength?: number;
}

/** The failed client authentications `harness` holds in its log, oldest first. */
export function clientAuthFailureLines(harness: LeakHarness): ClientAuthFailureLine[] {
  return harness.logLines
    .map((line) => JSON.parse(line) as ClientAuthFailureLine)
    .filter((line) => line.msg === CLIENT_AUTH_FAILED);
}

/** `aa_oidc_client_auth_failures_total`'s values by `endpoint client_id`. */
export async function clientAuthFailureCounts(server: TestServer): Promise<Map<string, number>> {
  const metric = server.app.metrics.registry.getSingleMetric('aa_oidc_client_auth_failures_total');
  assert.ok(metric, 'aa_oidc_client_auth_failures_total is defined');
  const { values } = await metric.get();
  return new Map(values.map((value) => [`${value.labels.endpoint} ${value.labels.client_id}`, value.value]));
}
