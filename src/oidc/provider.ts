import type Koa from 'koa';
import type { Kysely } from 'kysely';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import { accountConsoleApplication, withAccountConsole } from '../applications/account-console.ts';
import type { Application, ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import { startPurgeRounds } from '../db/bounded-purge.ts';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import type { WriteBatch } from '../db/write-batch.ts';
import type { Authenticator } from '../directory/authenticator.ts';
import type { Directory } from '../directory/port.ts';
import type { KeyStore } from '../keys/types.ts';
import { purgeRoundFailed } from '../logging/after-stop.ts';
import type { Logger } from '../logging/logger.ts';
import { brandingFrom } from '../http/pages/branding.ts';
import { requestLog } from '../logging/request-context.ts';
import { noteDatabaseUnavailable } from '../http/unavailable.ts';
import type { LogoutService } from '../logout/service.ts';
import { createIssuedCodes } from '../tokens/issued-codes.ts';
import { signInGeneration } from '../db/sign-in-generation.ts';
import { installAccessTokenFormats } from './access-token-format.ts';
import { installAccessTokenHash } from './at-hash.ts';
import { installDigestSecretComparison } from './client-auth.ts';
import { reportClientAuthFailures } from './client-auth-failures.ts';
import { createImportedSecretGate } from './imported-secret-gate.ts';
import {
  EXPIRED_ROWS_PURGE_CATCH_UP_MS,
  type ExpiredRowsRound,
  expiredRowsPurge,
} from './expired-rows-purge.ts';
import type { ApplicationLookup } from './clients.ts';
import { cookieKeys, deriveKey, issuerPath, providerConfiguration } from './configuration.ts';
import { codeExchangeHooks } from './code-exchange.ts';
import { installRefreshScopeLeniency } from './refresh-scope.ts';
import { OwnCodes } from './own-codes.ts';
import { discoveryPostProcessing } from './discovery.ts';
import { type ConsoleSignIn, consoleSignIn } from './console-sign-in.ts';
import { endSessionConfirm } from './end-session-confirm.ts';
import { logApplicationDebug } from './application-debug.ts';
import { includeSessionIdInIdTokens } from './include-sid.ts';
import { allowAnyPortOnlyForLoopbackIps } from './loopback-redirects.ts';
import { interactionRoutes } from './interactions/routes.ts';
import type { TwoFactorLogin } from './interactions/two-factor-step.ts';
import { createLoginThrottle, type LoginThrottle } from './interactions/throttle.ts';
import { introspectionAudit } from './introspection-audit.ts';
import { createChangeEpochs, EpochCache, epochCached, type EpochSource } from './change-epoch-cache.ts';
import { keptProfileLookup } from './kept-profiles.ts';
import { KeptRows } from './kept-rows.ts';
import { logoutWithoutSession } from './logout-without-session.ts';
import { mountProvider, PROVIDER_ROUTES, refuseMalformedQuery } from './mount.ts';
import { createPolicyEnforcer } from './policy-enforcer.ts';
import {
  acceptStoredJwtsAtIntrospectionAndRevocation,
  buildUserinfoErrorsOnlyWhenThrown,
  findClientsByMetadataObject,
  registerEndSessionStep,
  runBeforeEndSessionStep,
} from './provider-internals.ts';
import { perRequestApplicationLookup } from './request-applications.ts';
import { observeProvider, type ObservabilityDependencies } from './token-events.ts';

/**
 * A test of a path (relative to the issuer path, as the provider sees it) that is false when the
 * provider cannot route it to any of `routes`. Its router matches a path by its upper-case form,
 * character for character (an ASCII letter only from an ASCII letter), so the first character after
 * the slash tells most other routes apart at once: the layers that only some routes need let the
 * other requests pass without a step of their own.
 */
function mayRouteTo(routes: readonly string[]): (path: string) => boolean {
  const first = new Set(routes.flatMap((route) => [route[1]!.toLowerCase(), route[1]!.toUpperCase()]));
  return (path) => path.length > 1 && first.has(path[1]!);
}

/**
 * False for a path the provider cannot route to introspection, discovery or the JWKS (what
 * `afterProviderResponse` looks at): token, userinfo, authorization and logout requests among them.
 */
export const mayBeIntrospectionOrDiscovery = mayRouteTo([
  PROVIDER_ROUTES.introspection,
  PROVIDER_ROUTES.jwks,
  '/.well-known/openid-configuration',
]);

/**
 * False for a path the provider cannot route to the token endpoint or an authorization request (the
 * requests whose writes the code exchange holds back, code-exchange.ts): userinfo and introspection
 * among them.
 */
export const mayBeTokenOrAuthorization = mayRouteTo([PROVIDER_ROUTES.token, PROVIDER_ROUTES.authorization]);

/** False for a path the provider cannot route to the logout request (`logoutWithoutSession`'s). */
export const mayBeLogout = mayRouteTo([PROVIDER_ROUTES.end_session]);

export interface OidcDependencies {
  config: Config;
  logger: Logger;
  db: Kysely<Database>;
  databaseKind: DatabaseKind;
  /** Where requests' writes are committed, together on SQLite (src/db/write-batch.ts). */
  writes: WriteBatch;
  /** Application lookups, and the verification of secrets imported from the Python plugin. */
  applications: ApplicationLookup & Pick<ApplicationService, 'verifyImportedSecret'>;
  directory: Pick<Directory, 'profileById' | 'keepable'>;
  /** How people sign in at the login page (the directory's password check, EVE SSO, …). */
  authenticators: readonly Authenticator[];
  keyStore: Pick<KeyStore, 'signingJwks' | 'onChange'>;
  /** Audit events and metrics of the provider's work (audit events and metrics). */
  observability: ObservabilityDependencies;
  /** Two-factor sign-in: the login asks enrolled users for a code after the password. */
  twoFactor?: TwoFactorLogin;
  /** Back-channel logout: an ended session queues back-channel logouts for its applications. */
  logout?: Pick<LogoutService, 'enqueueSessionLogout' | 'published'>;
}

export interface Oidc {
  /** The provider instance serving requests now (replaced when the signing keys change). */
  current(): Provider;
  /** Keys for the Koa app that mounts the middleware (`koa.keys`): the provider's cookie keys. */
  cookieKeys: string[];
  /** Interaction pages and the provider under the issuer path, in one middleware. */
  middleware: Koa.Middleware;
  throttle: LoginThrottle;
  /** The web console's sign-in through this provider (its session, its codes). */
  consoleSignIn: ConsoleSignIn;
  /**
   * One round of the purge of expired provider rows and old login failures, now (the timer's rounds
   * run every `oidc.purgeIntervalSeconds`); `more` when some table has rows left for another round.
   */
  purge(): Promise<ExpiredRowsRound>;
  /** Stops the purge's rounds, waiting for the one under way (at most the database's connect timeout). */
  close(): Promise<void>;
}

/**
 * The protocol engine: oidc-provider configured for aa-oidc, behind one stable
 * middleware. oidc-provider takes its signing keys at construction, so a key rotation (noticed by
 * the KeyStore) builds a new Provider and swaps it in; all state lives in the database, so requests
 * in flight on the old instance and those on the new one see the same sessions, codes and tokens.
 */
export function createOidc(deps: OidcDependencies): Oidc {
  const { config, logger, db } = deps;
  const log = logger.child({ component: 'oidc' });
  // One lookup per request: within one provider request, the client lookup, the policy stages and the
  // token format share one lookup of the application. The save_bearer stage alone looks again, after
  // reading the change epoch afresh, immediately before tokens are saved (save_bearer); for a
  // client-credentials token, at the request's epoch, which the token's write checks (save-bearer.ts).
  // The built-in account console is a client too (src/applications/account-console.ts).
  const stored = withAccountConsole(deps.applications, accountConsoleApplication(config));
  // Applications are kept in memory while the change epoch stands; each request checks it before it
  // uses them (change-epoch-cache.ts).
  const epochs = createChangeEpochs(db, undefined, new KeptRows());
  // Users' profiles too, when the directory's changes are all in the change log (kept-profiles.ts):
  // the provider's lookups and the policy's go through `profiles`; the login pages read the directory.
  const profiles = keptProfileLookup(deps.directory, epochs);
  const applicationCache = new EpochCache<string, Application | undefined>();
  const keptApplications = (source: EpochSource): ApplicationLookup => {
    const find = epochCached(
      (clientId: string) => stored.findByClientId(clientId),
      epochs,
      applicationCache,
      source,
    );
    return {
      findByClientId: (clientId) =>
        typeof clientId === 'string' ? find(clientId) : stored.findByClientId(clientId),
    };
  };
  const applications = perRequestApplicationLookup(keptApplications('request'));
  // The access policy, asked at every stage; one per app, so that refusals are counted in its registry.
  const policy = createPolicyEnforcer({
    directory: profiles.directory,
    directoryAtSave: profiles.directoryAtSave,
    applications,
    applicationsAtSave: keptApplications('save'),
    applicationsAsOfRequest: keptApplications('request'),
    metrics: deps.observability.metrics,
    audit: deps.observability.audit,
  });

  // Rows saved by concurrent requests, committed together on SQLite.
  const { writes } = deps;
  // The codes and refresh tokens this process wrote, redeemed without reading them back.
  const ownCodes = new OwnCodes();
  // The issued-code audit and code-reuse detection around the code exchange.
  const codeExchange = codeExchangeHooks(
    createIssuedCodes({
      db,
      writes,
      config,
      audit: deps.observability.audit,
      metrics: deps.observability.metrics,
      secrets: deps.observability.secrets,
      logger: log,
    }),
    log,
    ownCodes,
    epochs.kept,
  );

  // What runs once the provider has answered, in one layer: introspection's audit event, then the
  // discovery document's post-processing (each looks at its own route only). Other routes (token,
  // userinfo, authorization…) pass through without waiting here: see `mayBeIntrospectionOrDiscovery`.
  const auditIntrospection = introspectionAudit(deps.observability);
  const processDiscovery = discoveryPostProcessing(config);
  const brandLogoutWithoutSession = logoutWithoutSession(brandingFrom(config));
  const answered: Koa.Middleware = async (ctx, next) => {
    await next();
    auditIntrospection(ctx);
    processDiscovery(ctx);
  };
  const afterProviderResponse: Koa.Middleware = (ctx, next) =>
    mayBeIntrospectionOrDiscovery(ctx.path) ? answered(ctx, next) : next();

  // Checks of secrets imported from the Python plugin: bounded per process, across provider rebuilds.
  const importedSecrets = {
    gate: createImportedSecretGate((clientId, presented) =>
      deps.applications.verifyImportedSecret(clientId, presented),
    ),
    metrics: deps.observability.metrics,
    logger: log,
    loggedTooCostly: new Set<string>(),
  };
  const build = (): Provider => {
    acceptStoredJwtsAtIntrospectionAndRevocation();
    buildUserinfoErrorsOnlyWhenThrown();
    runBeforeEndSessionStep();
    const provider = new Provider(
      config.issuer,
      providerConfiguration({
        config,
        db,
        applications,
        directory: profiles.directory,
        jwks: deps.keyStore.signingJwks(),
        policy,
        adapterHooks: codeExchange.adapterHooks,
        changeEpochs: epochs,
        writes,
        ownCodes,
      }),
    );
    // No proxy settings of its own: its middleware runs on the app's Koa context (mount.ts), whose
    // `proxy` and `maxIpsCount` (src/app.ts) say which forwarded headers count.
    installDigestSecretComparison(provider, importedSecrets);
    findClientsByMetadataObject(provider);
    installAccessTokenHash(provider);
    installAccessTokenFormats(provider, { config, logger: log, applications });
    installRefreshScopeLeniency(provider, config.oidc.scopes);
    provider.use((ctx, next) =>
      mayBeTokenOrAuthorization(ctx.path) ? codeExchange.middleware(ctx, next) : next(),
    );
    provider.use(afterProviderResponse);
    provider.use((ctx, next) => (mayBeLogout(ctx.path) ? brandLogoutWithoutSession(ctx, next) : next()));
    registerEndSessionStep(
      provider,
      endSessionConfirm({
        database: { db },
        branding: brandingFrom(config),
        logger: log,
        ...(deps.logout && { logout: deps.logout }),
      }),
    );
    includeSessionIdInIdTokens(provider);
    allowAnyPortOnlyForLoopbackIps(provider);
    logApplicationDebug(provider, log, codeExchange.onceTokensStored);
    reportClientAuthFailures(provider, {
      metrics: deps.observability.metrics,
      logger: log,
      applications,
      policy,
    });
    observeProvider(provider, deps.observability, codeExchange.onceTokensStored, codeExchange.onceConsumed);
    provider.on('server_error', (ctx: KoaContextWithOIDC, error: Error) => {
      // Answered 503 "try again" (and logged) by the app's unavailable-database handler.
      if (noteDatabaseUnavailable(ctx as unknown as Koa.Context, error)) return;
      requestLog(ctx as unknown as Koa.Context, log).error(
        { err: { name: error.name, message: error.message }, route: ctx.oidc?.route },
        'provider server error',
      );
    });
    return provider;
  };

  let provider = build();
  const unsubscribe = deps.keyStore.onChange(() => {
    try {
      provider = build();
      log.info('signing keys changed; provider rebuilt');
    } catch (error) {
      log.error(
        { err: { name: (error as Error).name, message: (error as Error).message } },
        'provider rebuild failed; keeping the previous keys',
      );
    }
  });

  const throttle = createLoginThrottle(db, deps.databaseKind, config.login);
  const branding = brandingFrom(config);
  const current = () => provider;
  const interactions = interactionRoutes({
    config,
    logger: log,
    provider: current,
    applications: stored,
    directory: deps.directory,
    authenticators: deps.authenticators,
    throttle,
    csrf: { key: deriveKey(config.secretKey, 'interaction csrf'), secure: config.mode === 'production' },
    passwordChangeKey: deriveKey(config.secretKey, 'password change'),
    externalSignInKey: deriveKey(config.secretKey, 'external sign-in'),
    branding,
    ...(deps.twoFactor
      ? {
          twoFactor: {
            twoFactor: deps.twoFactor,
            audit: deps.observability.audit,
            requiredForSuperusers: config.twoFactor.requiredForSuperusers,
            signInGeneration: (userId: number) => signInGeneration(deps.db, userId),
          },
        }
      : {}),
  });
  const mounted = mountProvider(issuerPath(config.issuer), current, branding);
  const malformedQuery = refuseMalformedQuery(issuerPath(config.issuer), branding);
  const middleware: Koa.Middleware = (ctx, next) =>
    malformedQuery(ctx) ? undefined : interactions(ctx, () => mounted(ctx, next));

  // Expired provider rows leave the database a bounded share a round (`EXPIRED_ROWS_PURGE`), every
  // `oidc.purgeIntervalSeconds`; while some table has rows left, the next round follows a second later.
  const purgeExpiredRows = expiredRowsPurge(db, throttle, {
    everyTableMs: config.oidc.purgeIntervalSeconds * 1000,
  });
  const purgeRounds = startPurgeRounds(
    async (signal) => {
      const round = await purgeExpiredRows(signal);
      if (round.deleted > 0) {
        const { payloads, changeLog, loginFailures, issuedCodes } = round.tables;
        log.debug(
          {
            payloads: payloads.deleted,
            change_log: changeLog.deleted,
            failures: loginFailures.deleted,
            issued_codes: issuedCodes.deleted,
            behind: round.behind,
          },
          'purged expired oidc rows',
        );
      }
      return round;
    },
    {
      intervalMs: config.oidc.purgeIntervalSeconds * 1000,
      catchUpMs: EXPIRED_ROWS_PURGE_CATCH_UP_MS,
      // A stop waits no longer for a statement of the round in flight than for a connection to open.
      stopWithinMs: config.databaseConnectTimeoutMs,
      // A round cut by the stop (the database closed under it) is the stop's doing, not a fault.
      failed: purgeRoundFailed(log, 'purge failed'),
    },
  );
  // Aborted on close: a round asked for by `purge()` makes no further statement.
  const closing = new AbortController();

  return {
    current,
    cookieKeys: cookieKeys(config.secretKey),
    middleware,
    throttle,
    consoleSignIn: consoleSignIn(current),
    purge: () => purgeExpiredRows(closing.signal),
    async close() {
      closing.abort();
      await purgeRounds.stop();
      unsubscribe();
      profiles.close();
      // The counts of coalesced refusals reach the audit bus before the services close it.
      policy.close();
    },
  };
}
