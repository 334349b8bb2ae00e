import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import { type App, type AppOptions, createApp } from '../../src/app.ts';
import type { ApplicationInput } from '../../src/applications/types.ts';
import type { NewUser } from '../../src/directory/builtin/types.ts';
import type { HttpServerLimits } from '../../src/http/server-limits.ts';
import { testConfig } from './config.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { currentCode } from '../../src/two-factor/totp.ts';
import { nameKey } from '../../src/util/name-key.ts';
import type { LeakHarness } from './leak-harness.ts';

/** A real aa-oidc server on 127.0.0.1 with a real database. */
export interface TestServer {
  app: App;
  database: TestDatabase;
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** The configured issuer: `http://127.0.0.1:PORT/o` unless the overrides name another. */
  issuer: string;
  close(): Promise<void>;
}

/**
 * Ports handed out for a test to listen on later: below Linux's ephemeral range (32768–60999), so that
 * no outgoing connection of another test takes one as its source port between the check here and the
 * test's own listen (a port from the ephemeral range could be, under the connection churn of the
 * suite); above Chromium's unsafe ports (the highest is 10080).
 */
const LISTEN_PORTS = { from: 20_000, to: 32_000 };

/** Binds `port` on 127.0.0.1 and lets it go: true when nothing listened on it. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Ports this process handed out: free when checked, but perhaps not listened on yet (a test that
 * takes two before starting either server must not be given the same one twice).
 */
const handedOut = new Set<number>();

/** A port nothing listens on right now, for a server a test starts next. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const port = LISTEN_PORTS.from + randomInt(LISTEN_PORTS.to - LISTEN_PORTS.from);
    if (handedOut.has(port) || !(await isFree(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port between ${LISTEN_PORTS.from} and ${LISTEN_PORTS.to} after 100 tries`);
}

/** How many free ports a server is tried on when another process takes the one it was given first. */
const FREE_PORT_ATTEMPTS = 5;

/**
 * What a server says when something else listens on its port: Node's EADDRINUSE (`aa-oidc serve`
 * says "the port is already in use"), "Address already in use" from nginx, Apache, PgBouncer and
 * MariaDB.
 */
const ADDRESS_IN_USE = /EADDRINUSE|already in use/i;

/** Whether a start failed because something else listens on the port: by the error's code or message. */
export function addressInUse(error: unknown): boolean {
  if ((error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') return true;
  return ADDRESS_IN_USE.test(error instanceof Error ? error.message : String(error));
}

/**
 * Starts a server a test needs on a free port: `start(port)` resolves once it listens there, or
 * rejects when it could not, leaving nothing running, with what the server said in the error's
 * message (as `Child.waitFor` does). When another process took the port since `freePort` looked (a
 * test file running at the same time, other work on the machine), `start` is called again with
 * another port.
 */
export async function startOnFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start(await freePort());
    } catch (error) {
      if (attempt < FREE_PORT_ATTEMPTS && addressInUse(error)) continue;
      throw error;
    }
  }
}

/** Where a client reaches the provider: a test server, or a reverse proxy in front of instances. */
export type Endpoint = Pick<TestServer, 'origin' | 'issuer'>;

export interface StartServerOptions {
  /** Every log line and audit event of the server is captured for leaks. */
  harness?: LeakHarness;
  /** Serve this database (its owner drops it) instead of a fresh one that `close()` drops. */
  database?: TestDatabase;
  /** Apply pending migrations first (default true). */
  migrate?: boolean;
  /** Listen on this port (default: a free one). The issuer is on it unless the overrides name one. */
  port?: number;
  /** Runs before the server listens: the place to add Koa middleware of the test's own. */
  beforeListen?: (app: App) => void;
  /**
   * Other HTTP server limits than serve's: narrower (a test of what happens when one is reached), or
   * wider (a test that is slow on purpose and not about them).
   */
  limits?: Partial<HttpServerLimits>;
  /** How long `close` waits past the grace period for handlers still running (HANDLERS_SETTLE_MS). */
  handlersSettleMs?: number;
  /**
   * The back-channel logout SSRF gate's resolver and the delivery's connection layer (test/logout/helpers.ts:
   * `tableResolver`, `guardedConnector`), so that no name of a test reaches real DNS.
   */
  logout?: Pick<AppOptions, 'resolver' | 'bclConnector'>;
}

/**
 * Starts a real aa-oidc server on 127.0.0.1: `createApp` with the test configuration plus
 * `overrides` (same shape as the config file), on a fresh database unless one is given.
 */
export async function startServer(
  overrides: Record<string, unknown> = {},
  options: StartServerOptions = {},
): Promise<TestServer> {
  const database = options.database ?? (await createTestDatabase({ migrated: options.migrate !== false }));
  const ownDatabase = options.database === undefined;
  try {
    for (let attempt = 1; ; attempt += 1) {
      const port = options.port ?? (await freePort());
      const app = await createApp(
        testConfig(database, { port, issuer: `http://127.0.0.1:${port}/o`, ...overrides }),
        {
          migrate: options.migrate ?? true,
          ...(options.harness && { logger: options.harness.loggerOptions }),
          ...options.logout,
        },
      );
      try {
        options.harness?.attach(app);
        options.beforeListen?.(app);
        await app.listen({
          host: '127.0.0.1',
          port,
          ...(options.limits && { limits: options.limits }),
          handlersSettleMs: options.handlersSettleMs,
        });
      } catch (error) {
        await app.close();
        // A test file running at the same time took the free port since `freePort` looked: another.
        if (options.port === undefined && attempt < FREE_PORT_ATTEMPTS && addressInUse(error)) continue;
        throw error;
      }
      return {
        app,
        database,
        origin: `http://127.0.0.1:${port}`,
        issuer: app.config.issuer,
        async close() {
          await app.close();
          if (ownDatabase) await database.drop();
        },
      };
    }
  } catch (error) {
    if (ownDatabase) await database.drop();
    throw error;
  }
}

export const PASSWORD = 'correct horse battery staple';

export async function seedUser(
  server: TestServer,
  input: Partial<NewUser> = {},
): Promise<{ id: number; username: string }> {
  const username = input.username ?? `pilot${randomBytes(3).toString('hex')}`;
  // The access policy: a user needs oidc_access to use any application; tests about the policy pass false.
  const profile = await server.app.directoryAdmin.createUser({
    password: PASSWORD,
    email: `${username}@example.org`,
    oidcAccess: true,
    ...input,
    username,
  });
  return { id: profile.user.id, username };
}

/**
 * A user (`seedUser`) enrolled in two-factor sign-in: the enrolment confirmed with the current TOTP
 * code, which that spends. Gives the user, the TOTP secret and the recovery codes.
 */
export async function seedTwoFactorUser(
  server: TestServer,
): Promise<{ user: { id: number; username: string }; secret: string; recoveryCodes: string[] }> {
  const user = await seedUser(server);
  const enrolment = await server.app.twoFactor.beginEnrolment(user);
  const confirmed = await server.app.twoFactor.confirmEnrolment(
    user,
    currentCode(enrolment.secret),
    enrolment.id,
  );
  if (!confirmed.ok) throw new Error(`the two-factor enrolment of ${user.username} was not confirmed`);
  return { user, secret: enrolment.secret, recoveryCodes: confirmed.recoveryCodes };
}

/**
 * Groups and states written straight into the database, past the names the services would refuse:
 * as Alliance Auth's may be, or as stored before such names were refused. States get priorities
 * from 4242 up.
 */
export async function storeNamesAsIs(
  server: TestServer,
  names: { groups?: readonly string[]; states?: readonly string[] },
): Promise<void> {
  const db = server.app.database.db;
  const now = Date.now();
  const row = (name: string) => ({ name, name_key: nameKey(name), oidc_access: 0 as const, created_at: now });
  if (names.groups?.length) await db.insertInto('auth_group').values(names.groups.map(row)).execute();
  if (names.states?.length) {
    await db
      .insertInto('state')
      .values(names.states.map((name, index) => ({ ...row(name), priority: 4242 + index })))
      .execute();
  }
}

export const REDIRECT_URI = 'https://rp.example.org/callback';

export async function seedApp(
  server: TestServer,
  input: Partial<ApplicationInput> = {},
): Promise<{ clientId: string; clientSecret: string | null }> {
  const created = await server.app.applications.create(
    {
      name: 'Test RP',
      redirectUris: [REDIRECT_URI],
      postLogoutRedirectUris: ['https://rp.example.org/bye'],
      ...input,
    },
    'test',
  );
  return { clientId: created.application.clientId, clientSecret: created.clientSecret };
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** A cookie jar for plain fetch: follows no redirect by itself. */
export class Browser {
  readonly cookies = new Map<string, string>();
  /** Every Set-Cookie line received, for assertions on the attributes. */
  readonly setCookieLines: string[] = [];

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const target = new URL(url);
    const cookie = [...this.cookies.entries()]
      .filter(([key]) => target.pathname.startsWith(key.split('|')[0]!))
      .map(([key, value]) => `${key.split('|')[1]}=${value}`)
      .join('; ');
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      this.setCookieLines.push(line);
      this.#store(line);
    }
    return response;
  }

  #store(line: string): void {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const index = pair!.indexOf('=');
    const name = pair!.slice(0, index);
    const value = pair!.slice(index + 1);
    const pathAttribute = attributes.find((attribute) => attribute.toLowerCase().startsWith('path='));
    const path = pathAttribute ? pathAttribute.slice(5) : '/';
    const key = `${path}|${name}`;
    const expired =
      attributes.some((attribute) => /^expires=thu, 01 jan 1970/i.test(attribute)) || value === '';
    if (expired) this.cookies.delete(key);
    else this.cookies.set(key, value);
  }

  /** Follows redirects that stay on `origin`; returns the first response that is not one of those. */
  async follow(url: string, origin: string, init: RequestInit = {}): Promise<Response> {
    let response = await this.fetch(url, init);
    let hops = 0;
    while (response.status >= 300 && response.status < 400 && hops < 10) {
      const location = new URL(response.headers.get('location')!, url).href;
      if (!location.startsWith(origin)) return response;
      url = location;
      response = await this.fetch(url);
      hops += 1;
    }
    return response;
  }
}

/** The value of a hidden or text input in a page. */
export function formField(html: string, name: string): string {
  const match =
    new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html) ??
    new RegExp(`value="([^"]*)"[^>]*name="${name}"`).exec(html);
  if (!match) throw new Error(`no field ${name} in page`);
  return match[1]!
    .replaceAll('&amp;', '&')
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>');
}

export function formAction(html: string, origin: string): string {
  const match = /<form[^>]*action="([^"]+)"/.exec(html);
  if (!match) throw new Error('no form in page');
  return new URL(match[1]!.replaceAll('&amp;', '&'), origin).href;
}

export interface SignInOptions {
  username?: string;
  password?: string;
  /** What to answer on the consent page (default allow); `undefined` pages are answered as they come. */
  consent?: 'allow' | 'deny';
  /** Record the pages seen, for assertions. */
  seen?: Array<{ kind: 'login' | 'consent' | 'other'; status: number; headers: Headers; body: string }>;
}

/**
 * Drives a browser through authorize → login → consent with plain fetch, following redirects on
 * the server by hand. Returns the response that leaves the server (the redirect to the client) or
 * the first page it does not know how to answer.
 */
export async function signIn(
  browser: Browser,
  server: Endpoint,
  authorizeUrl: string,
  options: SignInOptions = {},
): Promise<Response> {
  let response = await browser.follow(authorizeUrl, server.origin);
  for (let step = 0; step < 6; step += 1) {
    if (response.status >= 300 && response.status < 400) return response;
    const body = await response.text();
    const kind = body.includes('name="password"')
      ? 'login'
      : body.includes('name="decision"')
        ? 'consent'
        : 'other';
    options.seen?.push({ kind, status: response.status, headers: response.headers, body });
    if (kind === 'other') return new Response(body, { status: response.status, headers: response.headers });
    const form = new URLSearchParams({ csrf_token: formField(body, 'csrf_token') });
    if (kind === 'login') {
      if (options.username === undefined)
        return new Response(body, { status: response.status, headers: response.headers });
      form.set('username', options.username);
      form.set('password', options.password ?? PASSWORD);
    } else {
      form.set('decision', options.consent ?? 'allow');
    }
    const action = formAction(body, server.origin);
    response = await browser.follow(action, server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    if (kind === 'login' && response.status === 200) {
      const again = await response.clone().text();
      if (again.includes('name="password"')) {
        options.seen?.push({
          kind: 'login',
          status: response.status,
          headers: response.headers,
          body: again,
        });
        return response;
      }
    }
    if (kind === 'login' && response.status >= 400) return response;
  }
  throw new Error('sign-in did not finish');
}

export function authorizeUrl(server: Endpoint, params: Record<string, string>): string {
  return `${server.issuer}/authorize/?${new URLSearchParams(params).toString()}`;
}

export function basicAuth(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export async function postForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { raw: text };
  }
  return { status: response.status, body, headers: response.headers };
}
