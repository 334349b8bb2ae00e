import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { PollOutcome } from '../../src/alliance-auth/poller.ts';
import { ALLIANCE_AUTH_SCHEMA_REASON } from '../../src/alliance-auth/readiness.ts';
import { READINESS_REUSE_MS } from '../../src/http/health.ts';
import { type RpReceiver, seedReceiverApp } from '../logout/rp-receiver.ts';
import {
  allianceAuthDirectory,
  createAllianceAuthDatabase,
  FIXTURE_PASSWORD,
  type AllianceAuthKind,
  type AllianceAuthTestDatabase,
} from './alliance-auth.ts';
import { allianceAuthActions, type AllianceAuthActions } from './alliance-auth-changes.ts';
import { createLeakHarness, type LeakHarness } from './leak-harness.ts';
import { authorize, type Client, exchangeCode } from './flows.ts';
import { Browser, type seedApp, startServer, type TestServer } from './server.ts';

/**
 * What a suite serving Alliance Auth's users shares: a fresh copy of the fixture and a test server
 * whose directory it is. The fields are there once the suite's first `before` has run.
 */
export interface AllianceAuthSuite {
  readonly fixture: AllianceAuthTestDatabase;
  readonly server: TestServer;
  /** What the server logged and audited (only with `harness: true`). */
  readonly harness: LeakHarness;
  /** One cycle of the server's poller, now. */
  poll(): Promise<PollOutcome>;
}

export interface AllianceAuthSuiteOptions {
  /** The directory's settings (`allianceAuthDirectory`'s). */
  directory?: Parameters<typeof allianceAuthDirectory>[1];
  /** The rest of the server's configuration (`startServer`'s overrides), beside the directory. */
  config?: Record<string, unknown>;
  /** The server logs into a leak harness, `suite.harness`. */
  harness?: boolean;
  /** Rows of the suite's own, written to the fixture before the server starts. */
  prepare?: (fixture: AllianceAuthTestDatabase) => Promise<void>;
}

/**
 * Registers, in the suite it is called in, a `before` that copies the fixture to `kind` (then
 * `prepare`) and starts the server, and an `after` that closes the server and drops the copy. Call
 * it before the suite's own hooks, which then run after it.
 */
export function serveAllianceAuth(
  kind: AllianceAuthKind,
  options: AllianceAuthSuiteOptions = {},
): AllianceAuthSuite {
  let fixture: AllianceAuthTestDatabase | undefined;
  let server: TestServer | undefined;
  let harness: LeakHarness | undefined;
  before(async () => {
    fixture = await createAllianceAuthDatabase(kind);
    await options.prepare?.(fixture);
    if (options.harness) harness = createLeakHarness();
    server = await startServer(
      { directory: allianceAuthDirectory(fixture.readerUrl, options.directory), ...options.config },
      { ...(harness && { harness }) },
    );
  });
  after(async () => {
    await server?.close();
    await fixture?.drop();
  });
  return {
    get fixture() {
      return ready(fixture, 'fixture');
    },
    get server() {
      return ready(server, 'server');
    },
    get harness() {
      return ready(harness, 'harness (with harness: true)');
    },
    poll: () => ready(server, 'server').app.allianceAuth!.poller.pollOnce(),
  };
}

function ready<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`the suite's ${name} is read before its before hook has made it`);
  return value;
}

/** `server`'s /readyz, once an answer it gave before now is no longer reused (READINESS_REUSE_MS). */
export async function freshReadiness(
  server: TestServer,
): Promise<{ status: number; body: Record<string, unknown> }> {
  await delay(READINESS_REUSE_MS + 50);
  const response = await fetch(`${server.origin}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** /readyz while Alliance Auth's database answers and holds every column aa-oidc reads. */
export const READY_WITH_ALLIANCE_AUTH = {
  status: 200,
  body: { status: 'ready', database: 'reachable', migrations: 'applied', allianceAuth: 'reachable' },
};

/**
 * /readyz once a read found a column of Alliance Auth's missing or refused: the load balancer takes
 * the instance out. The answer is public, so it names no table or column (the log does).
 */
export const NOT_READY_FOR_ALLIANCE_AUTH_SCHEMA = {
  status: 503,
  body: {
    status: 'not_ready',
    database: 'reachable',
    migrations: 'applied',
    allianceAuth: 'unusable',
    reason: ALLIANCE_AUTH_SCHEMA_REASON,
  },
};

/** An application whose back-channel logouts `receiver` records. */
export interface ReceiverApp {
  clientId: string;
  clientSecret: string;
  receiver: RpReceiver;
}

/** A suite following Alliance Auth's changes to the applications, one cycle at a time. */
export interface FollowingSuite extends AllianceAuthSuite {
  /** Alliance Auth's own changes to the fixture. */
  readonly aa: AllianceAuthActions;
  /** An application (consent skipped) with a back-channel receiver of its own, closed after the suite. */
  receiverApp(input: Parameters<typeof seedApp>[1]): Promise<ReceiverApp>;
  /** The next cycle and the logout worker's next round; returns the kinds of change the cycle found. */
  nextCycle(): Promise<string[]>;
  /**
   * `username` signed in with the fixture's password through `client` (authorization parameters
   * `authorize`, `authorizeParams`'), and the code exchanged: the token response.
   */
  signedIn(client: Client, username: string, authorize: Record<string, string>): Promise<Tokens>;
}

/** The token response of a sign-in. */
export type Tokens = { access_token: string; refresh_token: string };

/**
 * `serveAllianceAuth` with password sign-in, a poller that runs only when a test drives it
 * (`poll`, `nextCycle`), back-channel logout to loopback retried after a second, and a leak harness;
 * the server has polled once, the baseline every later cycle compares with, before the tests.
 */
export function followAllianceAuth(kind: AllianceAuthKind): FollowingSuite {
  const suite = serveAllianceAuth(kind, {
    directory: { passwordLogin: true, pollSeconds: 3600 },
    config: { logout: { allowPrivateTargets: true, retryBackoffSeconds: [1, 1] } },
    harness: true,
  });
  let aa: AllianceAuthActions | undefined;
  const receivers: RpReceiver[] = [];
  before(async () => {
    aa = allianceAuthActions(suite.fixture);
    await suite.poll();
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
  });
  return {
    get fixture() {
      return suite.fixture;
    },
    get server() {
      return suite.server;
    },
    get harness() {
      return suite.harness;
    },
    get aa() {
      return ready(aa, 'aa');
    },
    poll: suite.poll,
    async receiverApp(input) {
      const app = await seedReceiverApp(suite.server, receivers, input);
      return { ...app, clientSecret: app.clientSecret! };
    },
    async signedIn(client, username, authorizeExtra) {
      const { response, verifier } = await authorize(
        suite.server,
        new Browser(),
        client,
        username,
        authorizeExtra,
        {
          password: FIXTURE_PASSWORD,
        },
      );
      return (await exchangeCode(suite.server, client, response, verifier)) as Tokens;
    },
    async nextCycle() {
      const outcome = await suite.poll();
      assert.equal(outcome.outcome, 'applied', JSON.stringify(outcome));
      await suite.server.app.logout.deliverDue();
      return outcome.outcome === 'applied' ? outcome.changes.map((change) => change.kind) : [];
    },
  };
}
