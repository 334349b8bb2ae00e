import type Koa from 'koa';
import { errors, type KoaContextWithOIDC, type Provider } from 'oidc-provider';
import { verifyClientSecret } from '../applications/secret.ts';
import { CLIENT_ID_MAX } from '../applications/service.ts';
import type { Application } from '../applications/types.ts';
import type { Logger } from '../logging/logger.ts';
import { requestLog } from '../logging/request-context.ts';
import type { Metrics } from '../metrics/registry.ts';
import { assertNever } from '../util/assert-never.ts';
import { stageForClientLookup } from './client-policy.ts';
import { type ApplicationLookup, clientMetadataFor } from './clients.ts';
import type { PolicyEnforcer } from './policy-enforcer.ts';

/** The endpoints that authenticate the client calling them (the provider's routes `token`, `introspection`, `revocation`). */
type Endpoint = 'token' | 'introspection' | 'revocation';

/** The label of every client id that names no application: invented ids never grow the label set. */
const UNKNOWN_CLIENT_LABEL = 'unknown';

/**
 * How the request tried to authenticate, as the provider read it (lib/shared/client_auth.js): the
 * Authorization header, `client_secret` in the body, a `client_assertion` (a method no client is
 * registered for), or nothing but a `client_id`.
 */
type PresentedMethod = 'client_secret_basic' | 'client_secret_post' | 'client_assertion' | 'none';

/**
 * What a request presented for a deactivated application, checked as if it were active: `right`, its
 * secret (or, for a public application, its client id alone, which is all that one presents);
 * `wrong`, another secret, none, or another method; `unchecked`, a secret still held as the hash
 * imported from the Python plugin, which no request of an application that can do nothing is worth
 * a PBKDF2 run (client-auth.ts).
 */
type Proof = 'right' | 'wrong' | 'unchecked';

/** Why the client was not authenticated, as an operator would act on it. */
type Failure =
  | { reason: 'wrong_secret'; clientId: string }
  | { reason: 'method_mismatch'; clientId: string; registeredMethod: string }
  | { reason: 'deactivated'; clientId: string; proof: Proof }
  | { reason: 'unknown_client'; presented: string };

export interface ClientAuthFailureDependencies {
  metrics: Pick<Metrics, 'clientAuthFailures'>;
  logger: Logger;
  /** The provider's per-request application lookup: a client the request looked up is answered from memory. */
  applications: ApplicationLookup;
  /** Where the refusal of a deactivated application is recorded once its own credential was presented. */
  policy: Pick<PolicyEnforcer, 'recordDenial'>;
}

/**
 * Counts and logs each failed client authentication at the endpoints that authenticate their caller
 * (token, introspection, revocation): the provider answers them `invalid_client` and emits its
 * route's error event, on failure only, so that a successful request does no work here. The client
 * authentication itself stays the provider's (and `client-auth.ts`'s comparison of digests).
 *
 * The metric is labelled by the client id only when it names an application (active or
 * deactivated): any other id is `unknown`, so that ids a caller invents cannot grow the label set.
 *
 * A deactivated application is refused by the client lookup (clients.ts) before any credential is
 * checked, and answered as an unknown client is. Its refusal by the access policy (a `policy_denied`
 * event at the request's stage, `aa_oidc_policy_rejections_total`) is recorded here, and only when
 * the request presented the application's own credential: a caller knowing only its client id
 * (client ids are public) gets this failure's count and log line, as for any other client, and
 * writes no audit row.
 * The log line names the application, or, for an id that names none, only its length (a relying
 * party may send its secret where the id belongs); never the secret, the assertion or the
 * Authorization header.
 */
export function reportClientAuthFailures(provider: Provider, deps: ClientAuthFailureDependencies): void {
  const on = (endpoint: Endpoint) => (ctx: KoaContextWithOIDC, error: errors.OIDCProviderError) => {
    if (!(error instanceof errors.InvalidClientAuth)) return;
    // The report never changes the answer (emitted within the provider's error handling), nor, a
    // step after it, ends the process as an unhandled rejection would.
    const unreported = (failure: unknown) =>
      deps.logger.warn({ err: failure, endpoint }, 'client authentication failure not reported');
    try {
      noteFailure(deps, ctx, endpoint).catch(unreported);
    } catch (failure) {
      unreported(failure);
    }
  };
  provider.on('grant.error', on('token'));
  provider.on('introspection.error', on('introspection'));
  provider.on('revocation.error', on('revocation'));
}

async function noteFailure(
  deps: ClientAuthFailureDependencies,
  ctx: KoaContextWithOIDC,
  endpoint: Endpoint,
): Promise<void> {
  const report = (failure: Failure) => reportFailure(deps, ctx, endpoint, failure);
  const failure = failureOf(ctx);
  if (failure) return report(failure);
  const presented = presentedClientId(ctx);
  if (presented === undefined || presented.length > CLIENT_ID_MAX)
    return report({ reason: 'unknown_client', presented: presented ?? '' });
  // Not found by the provider: unknown, or a deactivated application (which the client lookup
  // refuses, clients.ts). The lookup is the one the provider's own made in this request, kept in
  // memory (request-applications.ts): its answer is already there, and the report is made before
  // the response is written.
  const application = await deps.applications.findByClientId(presented).catch(() => undefined);
  if (!application) return report({ reason: 'unknown_client', presented });
  const proof = proofOf(application, ctx);
  report({ reason: 'deactivated', clientId: application.clientId, proof });
  const stage = stageForClientLookup(ctx);
  if (proof !== 'right' || application.active || !stage) return;
  deps.policy.recordDenial(
    stage,
    { outcome: 'deny', reason: 'app_unusable', clientId: application.clientId },
    { clientId: application.clientId, userId: null },
    ctx,
    // A public application's client id is all it presents: anyone may, as often as they like.
    { unauthenticated: clientMetadataFor(application).token_endpoint_auth_method === 'none' },
  );
}

/** What the request presented for an application the provider did not take, checked as it would have. */
function proofOf(application: Application, ctx: KoaContextWithOIDC): Proof {
  const presented = presentedMethod(ctx);
  if (clientMetadataFor(application).token_endpoint_auth_method === 'none')
    return presented === 'none' ? 'right' : 'wrong';
  if (presented !== 'client_secret_basic' && presented !== 'client_secret_post') return 'wrong';
  if (application.clientSecretPbkdf2 !== null) return 'unchecked';
  // The comparison of client-auth.ts: digests, in constant time.
  return verifyClientSecret(application, presentedSecret(ctx)) ? 'right' : 'wrong';
}

/** The failure of a client the provider found (an active application), or undefined when it found none. */
function failureOf(ctx: KoaContextWithOIDC): Failure | undefined {
  const client = ctx.oidc?.client;
  if (!client) return undefined;
  const registeredMethod = client.clientAuthMethod ?? 'none';
  const presented = presentedMethod(ctx);
  const secretPresented = presented === 'client_secret_basic' || presented === 'client_secret_post';
  // The provider takes a secret either way for a client registered for either.
  const secretRegistered =
    registeredMethod === 'client_secret_basic' || registeredMethod === 'client_secret_post';
  if (secretPresented && secretRegistered) return { reason: 'wrong_secret', clientId: client.clientId };
  return { reason: 'method_mismatch', clientId: client.clientId, registeredMethod };
}

/**
 * In the provider's order: a `client_secret` in the body first, so that one sent beside an empty
 * Authorization header (which the provider counts as no credential) is told as the secret it was.
 */
function presentedMethod(ctx: KoaContextWithOIDC): PresentedMethod {
  if (ctx.oidc?.params?.client_secret) return 'client_secret_post';
  if (ctx.headers.authorization !== undefined) return 'client_secret_basic';
  if (ctx.oidc?.body?.client_assertion !== undefined) return 'client_assertion';
  return 'none';
}

/**
 * The client id the request named: `client_id` in the body, else the user part of Basic (which the
 * provider has already read as well-formed, or it would have answered `invalid_request`).
 */
function presentedClientId(ctx: KoaContextWithOIDC): string | undefined {
  const inBody = ctx.oidc?.params?.client_id;
  if (typeof inBody === 'string') return inBody;
  return basicCredentials(ctx)?.clientId;
}

/** The secret the request presented, read as the provider reads it: `client_secret` in the body first. */
function presentedSecret(ctx: KoaContextWithOIDC): string | undefined {
  const inBody = ctx.oidc?.params?.client_secret;
  if (typeof inBody === 'string' && inBody !== '') return inBody;
  return basicCredentials(ctx)?.secret;
}

/** The id and the secret of a Basic Authorization header, form-decoded (RFC 6749 §2.3.1) as the provider does. */
function basicCredentials(ctx: KoaContextWithOIDC): { clientId: string; secret: string } | undefined {
  const header = ctx.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const encoded = header.slice(header.indexOf(' ') + 1);
  const basic = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = basic.indexOf(':');
  if (colon < 0) return undefined;
  try {
    const decode = (part: string) => decodeURIComponent(part.replace(/\+/g, '%20'));
    return { clientId: decode(basic.slice(0, colon)), secret: decode(basic.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

function reportFailure(
  deps: ClientAuthFailureDependencies,
  ctx: KoaContextWithOIDC,
  endpoint: Endpoint,
  failure: Failure,
): void {
  const koa = ctx as unknown as Koa.Context;
  const common = { endpoint, reason: failure.reason, authMethod: presentedMethod(ctx), address: koa.ip };
  let fields: Record<string, unknown>;
  let label: string;
  switch (failure.reason) {
    case 'wrong_secret':
      label = failure.clientId;
      fields = { ...common, clientId: failure.clientId };
      break;
    case 'deactivated':
      label = failure.clientId;
      // `proof`, not a name the logger takes for a secret's (it says only whether the secret was the application's).
      fields = { ...common, clientId: failure.clientId, proof: failure.proof };
      break;
    case 'method_mismatch':
      label = failure.clientId;
      fields = { ...common, clientId: failure.clientId, registeredAuthMethod: failure.registeredMethod };
      break;
    case 'unknown_client':
      label = UNKNOWN_CLIENT_LABEL;
      fields = {
        ...common,
        clientId: null,
        // Not even its first characters: a relying party may send its secret where the id belongs.
        unknownClientIdLength: failure.presented.length,
      };
      break;
    default:
      return assertNever(failure);
  }
  deps.metrics.clientAuthFailures.inc({ endpoint, client_id: label });
  // At `info`, as the access line of any 4xx: client ids are public (every authorization request
  // carries one), so anyone could write a `warn` line per request and flood alerts on warnings.
  // The metric is what to alert on; this line tells which application, how, and from where.
  requestLog(koa, deps.logger).info(fields, 'client authentication failed');
}
