import type { BenchClient } from './common.ts';
import type { EngineName, RunningEngine } from './engines.ts';
import {
  authorizationUrl,
  basicAuthorization,
  codeExchangeBody,
  codeFromLocation,
  cookieHeader,
  type Credentials,
  inParallel,
  isSessionCookie,
  issueCode,
  pathOf,
  redeemCode,
  signIn,
  storeCookies,
} from './http.ts';
import { addCounts, addGroups, type LoadResult, runLoad, type Step } from './load.ts';

/** An engine as the workloads use it: where it is and the client(s) it knows. */
export interface Target {
  engine: RunningEngine;
  client: BenchClient;
  /** aa-oidc's application with JWT access tokens; absent on the bare engine. */
  jwtClient?: BenchClient;
  /** aa-oidc's password login; absent on the bare engine (its interaction signs in by itself). */
  credentials?: Credentials;
  /** aa-oidc's accounts for the password-login workload. */
  loginUsers?: Credentials[];
}

export interface MeasureOptions {
  seconds: number;
  connections: number;
  /** A fixed number of units instead of `seconds` (`--count-instructions`, test/bench/workloads.test.ts). */
  units?: number;
}

export interface Workload {
  name: string;
  /** What the table calls it and what one unit of its rate is. */
  title: string;
  unit: 'requests/s' | 'flows/s' | 'logins/s';
  /** The ratio aa-oidc must reach against the bare engine (best of rounds); none for aa-oidc-only ones. */
  target?: number;
  engines: readonly EngineName[];
  /** What the bare engine runs when its side differs (said in the report). */
  bareNote?: string;
  measure(target: Target, options: MeasureOptions): Promise<LoadResult>;
}

/**
 * Codes issued ahead of a code-exchange batch. The bare engine's in-memory adapter is an LRU of
 * 1,000 entries (two generations): a code must still be there when redeemed, after the codes issued
 * after it and the two tokens each exchange adds, and a lookup in the older generation counts as an insert too; 250 keeps every code inside.
 */
const CODE_BATCH = 250;

/** argon2 runs on libuv's 4 threads: more logins in flight only wait, and count against the throttle. */
const LOGIN_CONNECTIONS = 4;

const ok = (status: number) => status >= 200 && status < 300;
const isRedirect = (status: number) => status === 302 || status === 303;
const formHeaders = (client: BenchClient) => ({ authorization: basicAuthorization(client) });

/** Runs `steps` against the target's engine, counting the engine process's CPU time. */
function load(
  target: Target,
  steps: readonly Step[],
  options: MeasureOptions | { connections: number; passes: number },
): Promise<LoadResult> {
  const amount =
    'passes' in options
      ? { passes: options.passes }
      : options.units !== undefined
        ? { passes: options.units }
        : { seconds: options.seconds };
  return runLoad(steps, {
    connections: options.connections,
    ...amount,
    origin: target.engine.origin,
    timeoutSeconds: target.engine.requestTimeoutSeconds,
    cpuSeconds: target.engine.cpuSeconds,
    threadCpu: target.engine.threadCpu,
    ...(target.engine.databaseCpuSeconds ? { databaseCpuSeconds: target.engine.databaseCpuSeconds } : {}),
    ...(target.engine.statements ? { statements: target.engine.statements } : {}),
    ...(target.engine.allocation ? { allocation: target.engine.allocation } : {}),
    ...(target.engine.instructions ? { instructions: target.engine.instructions } : {}),
  });
}

/** A fresh session (the flow workloads never reuse one: another workload's flood may have evicted it). */
async function freshSession(target: Target): Promise<string> {
  const jar = await signIn(target.engine.endpoints, target.client, target.credentials);
  const session = cookieHeader(jar, isSessionCookie);
  if (!session) throw new Error(`${target.engine.name}: signing in set no session cookie`);
  return session;
}

async function freshTokens(target: Target, client = target.client) {
  const jar = await signIn(target.engine.endpoints, client, target.credentials);
  const code = await issueCode(target.engine.endpoints, client, cookieHeader(jar, isSessionCookie));
  return redeemCode(target.engine.endpoints, client, code);
}

function introspection(client: BenchClient, token: string, engine: RunningEngine): Step {
  return {
    method: 'POST',
    path: pathOf(engine.endpoints.introspection),
    headers: formHeaders(client),
    body: new URLSearchParams({ token }).toString(),
    // The token must stay active throughout: an inactive answer is a miss, not a measurement.
    check: ({ status, body }) => ok(status) && body.includes('"active":true'),
  };
}

function simpleGet(url: string, check: Step['check'] = ({ status }) => ok(status)): Step {
  return { method: 'GET', path: pathOf(url), check };
}

export const WORKLOADS: readonly Workload[] = [
  {
    name: 'discovery',
    title: 'discovery',
    unit: 'requests/s',
    target: 0.9,
    engines: ['aa-oidc', 'bare'],
    measure: (target, options) => load(target, [simpleGet(target.engine.endpoints.discovery)], options),
  },
  {
    name: 'jwks',
    title: 'JWKS',
    unit: 'requests/s',
    target: 0.9,
    engines: ['aa-oidc', 'bare'],
    measure: (target, options) => load(target, [simpleGet(target.engine.endpoints.jwks)], options),
  },
  {
    name: 'userinfo',
    title: 'userinfo (opaque access token)',
    unit: 'requests/s',
    target: 0.9,
    engines: ['aa-oidc', 'bare'],
    async measure(target, options) {
      const tokens = await freshTokens(target);
      const step: Step = {
        method: 'GET',
        path: pathOf(target.engine.endpoints.userinfo),
        headers: { authorization: `Bearer ${tokens.access_token}` },
        check: ({ status, body }) => ok(status) && body.includes('"sub"'),
      };
      return load(target, [step], options);
    },
  },
  {
    name: 'introspection-opaque',
    title: 'introspection (opaque access token)',
    unit: 'requests/s',
    target: 0.9,
    engines: ['aa-oidc', 'bare'],
    async measure(target, options) {
      const tokens = await freshTokens(target);
      return load(target, [introspection(target.client, tokens.access_token, target.engine)], options);
    },
  },
  {
    name: 'introspection-jwt',
    title: 'introspection (JWT access token)',
    unit: 'requests/s',
    target: 0.9,
    engines: ['aa-oidc', 'bare'],
    bareNote:
      'the bare engine introspects an opaque token: it keeps no state for its JWT access tokens and refuses them at introspection',
    async measure(target, options) {
      const client = target.jwtClient ?? target.client;
      const tokens = await freshTokens(target, client);
      if (target.jwtClient && tokens.access_token.split('.').length !== 3) {
        throw new Error('the JWT application was not issued a JWT access token');
      }
      return load(target, [introspection(client, tokens.access_token, target.engine)], options);
    },
  },
  {
    name: 'sso-code-flow',
    title: 'SSO code flow (session cookie; authorize + code exchange)',
    unit: 'flows/s',
    target: 1.0,
    engines: ['aa-oidc', 'bare'],
    async measure(target, options) {
      const session = await freshSession(target);
      const { client, engine } = target;
      const steps: Step[] = [
        {
          method: 'GET',
          path: pathOf(authorizationUrl(engine.endpoints, client)),
          headers: { cookie: session },
          check: ({ status, headers }, context) => {
            context.code = codeFromLocation(headers.location, client);
            return isRedirect(status) && context.code !== undefined;
          },
        },
        {
          method: 'POST',
          path: pathOf(engine.endpoints.token),
          headers: formHeaders(client),
          body: (context) => codeExchangeBody(client, String(context.code)),
          check: ({ status, body }) => ok(status) && body.includes('"access_token"'),
        },
      ];
      return load(target, steps, options);
    },
  },
  {
    name: 'code-exchange',
    title: 'code exchange',
    unit: 'requests/s',
    target: 1.0,
    engines: ['aa-oidc', 'bare'],
    async measure(target, options) {
      const { client, engine } = target;
      const session = await freshSession(target);
      const total: LoadResult = {
        completed: 0,
        failed: 0,
        seconds: 0,
        cpuSeconds: 0,
        loadCpuSeconds: 0,
        latencies: [],
      };
      // Batches of codes issued beforehand (not timed), then redeemed under load (timed).
      const done = () =>
        options.units !== undefined
          ? total.completed + total.failed >= options.units
          : total.seconds >= options.seconds;
      while (!done()) {
        const size =
          options.units !== undefined
            ? Math.min(CODE_BATCH, options.units - total.completed - total.failed)
            : CODE_BATCH;
        const codes = await inParallel(size, 8, () => issueCode(engine.endpoints, client, session));
        const step: Step = {
          method: 'POST',
          path: pathOf(engine.endpoints.token),
          headers: formHeaders(client),
          body: () => codeExchangeBody(client, codes.pop() ?? 'no-code-left'),
          check: ({ status, body }) => ok(status) && body.includes('"access_token"'),
        };
        const batch = await load(target, [step], { connections: options.connections, passes: size });
        total.completed += batch.completed;
        total.failed += batch.failed;
        total.seconds += batch.seconds;
        total.cpuSeconds += batch.cpuSeconds;
        total.loadCpuSeconds += batch.loadCpuSeconds;
        if (batch.threadCpuSeconds)
          total.threadCpuSeconds = addGroups(total.threadCpuSeconds, batch.threadCpuSeconds);
        if (batch.databaseCpuSeconds !== undefined)
          total.databaseCpuSeconds = (total.databaseCpuSeconds ?? 0) + batch.databaseCpuSeconds;
        total.latencies.push(...batch.latencies);
        if (batch.statements)
          total.statements = total.statements
            ? addCounts(total.statements, batch.statements)
            : batch.statements;
        if (batch.allocation)
          total.allocation = total.allocation
            ? addCounts(total.allocation, batch.allocation)
            : batch.allocation;
        if (batch.instructions !== undefined)
          total.instructions = (total.instructions ?? 0) + batch.instructions;
        if (batch.firstFailure) total.firstFailure ??= batch.firstFailure;
      }
      return total;
    },
  },
  {
    name: 'refresh',
    title: 'refresh (rotation)',
    unit: 'requests/s',
    target: 0.9,
    engines: ['aa-oidc', 'bare'],
    async measure(target, options) {
      const { client, engine } = target;
      const session = await freshSession(target);
      // Twice as many rotation chains as connections; each response puts its new refresh token back.
      const chains = await inParallel(options.connections * 2, 8, async () => {
        const tokens = await redeemCode(
          engine.endpoints,
          client,
          await issueCode(engine.endpoints, client, session),
        );
        if (!tokens.refresh_token)
          throw new Error(`${engine.name}: the code exchange issued no refresh token`);
        return tokens.refresh_token;
      });
      const step: Step = {
        method: 'POST',
        path: pathOf(engine.endpoints.token),
        headers: formHeaders(client),
        body: (context) => {
          const token = chains.shift() ?? 'no-refresh-token-left';
          context.used = token;
          return new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }).toString();
        },
        check: ({ status, body }) => {
          if (!ok(status)) return false;
          const rotated = (JSON.parse(body) as { refresh_token?: string }).refresh_token;
          if (!rotated) return false;
          chains.push(rotated);
          return true;
        },
      };
      return load(target, [step], options);
    },
  },
  {
    name: 'client-credentials',
    title: 'client_credentials',
    unit: 'requests/s',
    target: 0.75,
    engines: ['aa-oidc', 'bare'],
    measure: (target, options) =>
      load(
        target,
        [
          {
            method: 'POST',
            path: pathOf(target.engine.endpoints.token),
            headers: formHeaders(target.client),
            body: 'grant_type=client_credentials',
            check: ({ status, body }) => ok(status) && body.includes('"access_token"'),
          },
        ],
        options,
      ),
  },
  {
    name: 'password-login',
    title: 'browserless login with password (authorize, login form, consent skipped, code exchange)',
    unit: 'logins/s',
    engines: ['aa-oidc'],
    measure(target, options) {
      const { client, engine, loginUsers } = target;
      if (!loginUsers?.length) throw new Error('the password login needs accounts');
      // Each pass signs in as the next account, from at most LOGIN_CONNECTIONS connections: the login
      // throttle reserves every attempt in flight against per-account and per-address budgets.
      let next = 0;
      const jarOf = (context: Record<string, unknown>) =>
        (context.jar ??= new Map<string, string>()) as Map<string, string>;
      const follow = (context: Record<string, unknown>) => ({ cookie: cookieHeader(jarOf(context)) });
      /** A redirect to another provider page; `next` is where the flow goes on. */
      const redirectTo =
        (what: RegExp) =>
        ({ status, headers }: Parameters<Step['check']>[0], context: Record<string, unknown>) => {
          storeCookies(jarOf(context), headers['set-cookie']);
          const location = String(headers.location ?? '');
          if (!isRedirect(status) || !what.test(location)) return false;
          context.next = pathOf(new URL(location, engine.origin).toString());
          return true;
        };
      const steps: Step[] = [
        {
          method: 'GET',
          path: pathOf(authorizationUrl(engine.endpoints, client)),
          check: redirectTo(/\/interaction\//),
        },
        {
          method: 'GET',
          path: (context) => String(context.next),
          headers: follow,
          check: ({ status, body, headers }, context) => {
            storeCookies(jarOf(context), headers['set-cookie']);
            const csrf = /name="csrf_token"\s+value="([^"]+)"/.exec(body)?.[1];
            const action = /<form[^>]*action="([^"]+)"/.exec(body)?.[1];
            if (status !== 200 || !csrf || !action) return false;
            context.csrf = csrf;
            context.next = action.replace(/&amp;/g, '&');
            return true;
          },
        },
        {
          method: 'POST',
          path: (context) => String(context.next),
          headers: follow,
          body: (context) =>
            new URLSearchParams({
              csrf_token: String(context.csrf),
              ...loginUsers[next++ % loginUsers.length]!,
            }).toString(),
          check: redirectTo(/\/authorize\//),
        },
        // Resumed: an application that skips authorization gets its grant without a consent
        // prompt, so the authorization ends here with the code.
        {
          method: 'GET',
          path: (context) => String(context.next),
          headers: follow,
          check: ({ status, headers }, context) => {
            context.code = codeFromLocation(headers.location, client);
            return isRedirect(status) && context.code !== undefined;
          },
        },
        {
          method: 'POST',
          path: pathOf(engine.endpoints.token),
          headers: formHeaders(client),
          body: (context) => codeExchangeBody(client, String(context.code)),
          check: ({ status, body }) => ok(status) && body.includes('"access_token"'),
        },
      ];
      return load(target, steps, {
        ...options,
        connections: Math.min(options.connections, LOGIN_CONNECTIONS),
      });
    },
  },
];
