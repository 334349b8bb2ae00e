import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { AllianceAuthDirectory } from './alliance-auth/create.ts';
import { ALLIANCE_AUTH_SCHEMA_REASON } from './alliance-auth/readiness.ts';
import { assertNever } from './util/assert-never.ts';
import { type Config, settingName } from './config/load.ts';
import { AUDIT_PURGE_CATCH_UP_MS } from './audit/store.ts';
import { startPurgeRounds } from './db/bounded-purge.ts';
import { describeDatabase } from './db/errors.ts';
import { whyNotWritable } from './db/writable.ts';
import { declaredTypesOnly } from './http/content-security-policy.ts';
import { forwardedHeadersOnlyFromProxies } from './http/forwarded-headers.ts';
import { type DependencyState, healthRoutes } from './http/health.ts';
import { pinToIssuer } from './http/issuer-host.ts';
import { readQueriesInLinearTime } from './http/query.ts';
import { answerUnknownPaths } from './http/not-found.ts';
import { refuseUnreadableTarget } from './http/request-target.ts';
import { refuseOversizedAccept } from './http/accept-header.ts';
import { createHttpServer, type HttpServerLimits } from './http/server-limits.ts';
import { type Drainable, drainable } from './http/graceful-shutdown.ts';
import { answerUnavailable } from './http/unavailable.ts';
import { answerUnexpectedErrors } from './http/unexpected-error.ts';
import { whyPgBossUnusableNow } from './logout/pgboss-transport.ts';
import { browserPaths } from './oidc/mount.ts';
import { externalCallbackSecretParameters } from './oidc/interactions/external-sign-in.ts';
import { purgeRoundFailed } from './logging/after-stop.ts';
import { logKoaErrors, requestContext } from './logging/request-context.ts';
import { metricsRoute } from './metrics/http.ts';
import { createServices, type Services, type ServicesOptions } from './services.ts';
import { createOidc, type Oidc } from './oidc/provider.ts';
import { demoRelyingParty } from './demo/rp.ts';
import { accountRoutes } from './account/routes.ts';
import { adminRoutes } from './admin/routes.ts';
import { type ConsoleRequest, type ConsoleRoute, consoleMiddleware } from './console/http.ts';
import { html } from './http/pages/layout.ts';
import { consoleRoutes } from './console/routes.ts';
import { createConsoleSessions } from './console/session.ts';
import { brandingFrom } from './http/pages/branding.ts';
import { deriveKey, issuerPath } from './oidc/configuration.ts';
import { userIdOf } from './oidc/policy-enforcer.ts';

export type AppOptions = ServicesOptions;

/** Alliance Auth's database as `/readyz` answers it (its own log line names what is missing). */
async function allianceAuthState(allianceAuth: AllianceAuthDirectory): Promise<DependencyState> {
  const judged = await allianceAuth.readiness();
  switch (judged.kind) {
    case 'ready':
      return { kind: 'reachable' };
    case 'unreachable':
      return { kind: 'unreachable' };
    case 'schema_incomplete':
      return { kind: 'unusable', reason: ALLIANCE_AUTH_SCHEMA_REASON };
    default:
      return assertNever(judged);
  }
}

/** The HTTP application on top of the services. */
export interface App extends Services {
  koa: Koa;
  /** The OpenID Connect provider mounted under the issuer path. */
  oidc: Oidc;
  /** Every route of the web console (landing, account page, admin UI), with its access level. */
  consoleRoutes: readonly ConsoleRoute[];
  /**
   * Starts listening on the configured host and port, with HTTP_SERVER_TIMEOUTS and the configured
   * connection caps (a test may narrow them); resolves with the bound address. `handlersSettleMs`
   * replaces HANDLERS_SETTLE_MS for `close` (a test that holds a handler past the grace period).
   */
  listen(overrides?: {
    port?: number;
    host?: string;
    limits?: Partial<HttpServerLimits>;
    handlersSettleMs?: number;
  }): Promise<AddressInfo>;
  /**
   * Stops accepting connections, answers the requests in flight (with `Connection: close`) and waits
   * for their handlers, even those whose clients have gone, then closes the services. Past
   * `http.shutdownGraceSeconds` the connections still open are closed (logged at `warn`), their
   * handlers are given HANDLERS_SETTLE_MS more to end, and the services close all the same.
   */
  close(): Promise<void>;
}

export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const services = await createServices(config, options);
  const koa = new Koa({ proxy: config.trustProxy, maxIpsCount: config.trustedProxyHops });
  // A query of thousands of parameters is read in one pass, not in seconds of CPU (Koa's own reading).
  readQueriesInLinearTime(koa);
  // No answer is read as another type than it declares, a JSON one included.
  koa.use(declaredTypesOnly());
  // Forwarded headers count only from the configured proxies, before anything reads them.
  koa.use(forwardedHeadersOnlyFromProxies(config));
  // Then: request id, child logger on ctx.state.log, one access line per request.
  koa.use(
    requestContext(services.logger, {
      secretQueryParameters: externalCallbackSecretParameters(config.issuer, services.authenticators),
    }),
  );
  logKoaErrors(koa, services.logger);
  // An error nothing below handles is a 500 with the headers every answer has, not Koa's bare one.
  koa.use(answerUnexpectedErrors(brandingFrom(config)));
  // A request target that cannot be read (a malformed absolute form) is a 400 before anything reads it.
  koa.use(refuseUnreadableTarget());
  // An Accept header longer than any client sends is a 431 before the provider negotiates with it.
  koa.use(refuseOversizedAccept());
  // A database that is down or unreachable makes requests answer 503 "try again", not 500.
  koa.use(answerUnavailable(services.logger, describeDatabase(config.database), brandingFrom(config)));
  const allianceAuth = services.allianceAuth;
  koa.use(
    healthRoutes(
      services.database.db,
      services.database.kind,
      allianceAuth ? [{ name: 'allianceAuth', state: () => allianceAuthState(allianceAuth) }] : [],
      {
        startedMigrated: services.startedMigrated,
        logger: services.logger,
        writes: {
          whyNotWritable: () =>
            whyNotWritable(services.database, { setting: settingName(config.origins, 'databaseUrl') }),
          database: describeDatabase(config.database),
          logger: services.logger,
        },
        pgBoss: {
          // On SQLite (no pg-boss there) undefined, without a query.
          // Once this process's pg-boss started, a schema dropped or emptied since is one it will not
          // install again (a flag of this process: no query).
          whyUnusable: () => whyPgBossUnusableNow(services.database, services.logout.transportStarted()),
          logger: services.logger,
        },
      },
    ),
  );
  koa.use(metricsRoute(services.metrics, config.metrics.bearerToken));
  // An address nothing below answers is a 404 page to a browser, a JSON 404 to a program.
  koa.use(answerUnknownPaths(brandingFrom(config)));
  const oidc = createOidc({
    config,
    logger: services.logger,
    db: services.database.db,
    databaseKind: services.database.kind,
    writes: services.writes,
    applications: services.applications,
    directory: services.directory,
    authenticators: services.authenticators,
    twoFactor: services.twoFactor,
    keyStore: services.keyStore,
    observability: { audit: services.audit, metrics: services.metrics, secrets: services.secrets },
    logout: services.logout,
  });
  koa.keys = oidc.cookieKeys;
  // Every URL the provider builds comes from the issuer; production answers only for its host.
  koa.use(
    pinToIssuer(koa, config, {
      isBrowserPath: browserPaths(issuerPath(config.issuer)),
      branding: brandingFrom(config),
    }),
  );
  // The demo relying party of `aa-oidc demo` (/demo/), in development mode only: a production
  // server never serves it, whatever the database holds. It answers 404 until the demo is seeded.
  if (config.mode === 'development')
    koa.use(demoRelyingParty({ config, applications: services.applications, logger: services.logger }));
  const web = webConsole(services, oidc);
  koa.use(web.middleware);
  koa.use(oidc.middleware);

  // Audit events older than audit.retentionDays leave the database (every instance may do it), a
  // bounded share a round (`AUDIT_PURGE`): while some remain, the next round follows within a second.
  const auditPurge = startPurgeRounds((signal) => services.auditStore.purge(undefined, signal), {
    intervalMs: config.oidc.purgeIntervalSeconds * 1000,
    catchUpMs: AUDIT_PURGE_CATCH_UP_MS,
    // A stop waits no longer for a statement of the round in flight than for a connection to open.
    stopWithinMs: config.databaseConnectTimeoutMs,
    // A round cut by the stop (the database closed under it) is the stop's doing, not a fault.
    failed: purgeRoundFailed(services.logger, 'audit purge failed'),
  });

  let serving: { server: Server; requests: Drainable; settleMs: number | undefined } | undefined;
  return {
    ...services,
    koa,
    oidc,
    consoleRoutes: web.routes,
    listen(overrides = {}) {
      return new Promise((resolve, reject) => {
        // The middleware as it is now: a test adds its own before it listens.
        const requests = drainable(koa.callback());
        const listening = createHttpServer(requests.listener, config, overrides.limits);
        requests.watch(listening);
        listening.listen(overrides.port ?? config.port, overrides.host ?? config.host);
        listening.once('error', reject);
        listening.once('listening', () => {
          serving = { server: listening, requests, settleMs: overrides.handlersSettleMs };
          // The server follows Alliance Auth's changes (one instance at a time, by its lease).
          allianceAuth?.poller.start();
          resolve(listening.address() as AddressInfo);
        });
      });
    },
    async close() {
      // The stop began: an audit event the database did not take from here on is counted at its close,
      // and pg-boss's failures from here on (its maintenance meeting a dead route, say) are the stop's.
      services.stopping();
      if (serving) {
        const { server, requests, settleMs } = serving;
        serving = undefined;
        await requests.drain(server, config.http.shutdownGraceSeconds * 1000, services.logger, settleMs);
      }
      // Both purges' rounds in flight are told to stop at once: over a dead route, each waits its bound.
      await Promise.all([auditPurge.stop(), oidc.close()]);
      await services.close();
    },
  };
}

/**
 * The web console on the same origin as the issuer: the landing page (`/`), the account page
 * (`/account`) and the admin UI (`/admin`), signed in through the provider's own login and session.
 */
function webConsole(services: Services, oidc: Oidc): { middleware: Koa.Middleware; routes: ConsoleRoute[] } {
  const { config } = services;
  const branding = brandingFrom(config);
  const sessions = createConsoleSessions({
    issuer: config.issuer,
    secure: config.mode === 'production',
    csrfKey: deriveKey(config.secretKey, 'console csrf'),
    provider: oidc.consoleSignIn,
  });
  const loadUser = async (accountId: string) => {
    const userId = userIdOf(accountId);
    return userId === null ? undefined : services.directory.profileById(userId);
  };
  const routes = [
    ...consoleRoutes({
      sessions,
      branding,
      issuer: config.issuer,
      rpInitiatedLogout: config.logout.rpInitiated,
      passwordSignIn: services.authenticators.some((authenticator) => authenticator.kind === 'password'),
      loadUser,
    }),
    ...accountRoutes({
      config,
      branding,
      // Alliance Auth's passwords are changed in Alliance Auth: the page only says what the visitor's
      // profile tells of theirs.
      ...(services.directoryReadOnly ? {} : { directoryAdmin: services.directoryAdmin }),
      applications: services.applications,
      tokens: services.tokens,
      twoFactor: services.twoFactor,
      throttle: oidc.throttle,
      db: services.database.db,
      logger: services.logger,
      audit: services.audit,
    }),
    ...adminRoutes({
      config,
      applications: services.applications,
      directory: services.directory,
      // Alliance Auth's users, states and groups are changed in Alliance Auth: the pages only show them.
      ...(services.directoryReadOnly ? {} : { directoryAdmin: services.directoryAdmin }),
      keys: services.keys,
      keyStore: services.keyStore,
      logout: services.logout,
      tokens: services.tokens,
      twoFactor: services.twoFactor,
      auditStore: services.auditStore,
      db: services.database.db,
      dbKind: services.database.kind,
      logger: services.logger,
    }),
  ];
  // With twoFactor.requiredForSuperusers, the admin UI wants a session signed in with a code: an
  // older session signs in again (the login then asks for the code, or sets two-factor up).
  const superuserCheck = async (request: ConsoleRequest): Promise<'ok' | 'handled'> => {
    if (!config.twoFactor.requiredForSuperusers || request.session!.amr.includes('otp')) return 'ok';
    if (request.ctx.method === 'GET' || request.ctx.method === 'HEAD') {
      sessions.startSignIn(request.ctx, request.ctx.originalUrl, { forceLogin: true });
    } else {
      request.render(
        'Two-factor sign-in required',
        html`<h1>Two-factor sign-in required</h1>
          <p class="alert" role="alert">
            Administrators sign in with a code. <a href="/account/sign-in?return=/admin">Sign in again</a>.
          </p>`,
        { status: 403 },
      );
    }
    return 'handled';
  };
  const middleware = consoleMiddleware({
    sessions,
    gate: { loadUser, superuserCheck },
    branding,
    logger: services.logger,
    origin: new URL(config.issuer).origin,
    routes,
  });
  return { middleware, routes };
}
