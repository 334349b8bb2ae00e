import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { sql } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.ts';
import { BCL_QUEUE, PGBOSS_SCHEMA } from '../../src/logout/pgboss-transport.ts';
import { DEFAULT_WORKER_CONCURRENCY } from '../../src/logout/worker.ts';
import { createServices, type Services } from '../../src/services.ts';
import { type Child, startChild } from '../helpers/child-process.ts';
import { spawnCli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { consoleGet, consolePost, consoleSignIn } from '../helpers/console.ts';
import { createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { commandUnavailable, missing } from '../helpers/e2e.ts';
import {
  authorize,
  authorizeParams,
  type Client,
  codeFrom,
  introspect,
  login,
  tokenRequest,
  userinfo,
} from '../helpers/flows.ts';
import {
  Browser,
  type Endpoint,
  freePort,
  PASSWORD,
  REDIRECT_URI,
  startOnFreePort,
} from '../helpers/server.ts';
import { adaptDeployFile } from '../helpers/deploy-file.ts';
import { waitUntil } from '../helpers/wait.ts';
import { refusesConnections } from '../helpers/refused-port.ts';
import { loopbackCertificate } from '../helpers/certificate.ts';

/** Debian's nginx (in /usr/sbin, which a non-root PATH may lack). */
const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
const DEPLOY_CONF = fileURLToPath(new URL('../../deploy/nginx/aa-oidc.conf', import.meta.url));
/** The header the test's nginx adds to every answer: which instance served it (test only). */
const UPSTREAM = 'x-test-upstream';

const postgres = await reachablePostgres();
const skip =
  commandUnavailable(NGINX, ['-v'], 'nginx') ||
  commandUnavailable('openssl', ['version'], 'openssl') ||
  ('missing' in postgres ? missing(postgres.missing) : false);

/**
 * deploy/nginx/aa-oidc.conf as the test runs it: the same file with the listen ports, the
 * certificate, the instances' addresses and the server name replaced (each replacement must find
 * its text, so the test notices when the file changes shape), plus one header naming the instance
 * that answered. IPv6 listeners are dropped (loopback IPv4 only).
 */
export function nginxSiteFromDeployFile(
  deployFile: string,
  values: {
    httpsPort: number;
    httpPort: number;
    instancePorts: [number, number];
    cert: string;
    key: string;
    accessLog: string;
  },
): string {
  return adaptDeployFile(deployFile, 'deploy/nginx/aa-oidc.conf', [
    [/ssl_certificate\s+\S+;/, `ssl_certificate ${values.cert};`],
    [/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${values.key};`],
    ['server 127.0.0.1:8000 ', `server 127.0.0.1:${values.instancePorts[0]} `],
    ['server 127.0.0.1:8001 ', `server 127.0.0.1:${values.instancePorts[1]} `],
    [/^\s*listen \[::\]:80;\n/m, ''],
    [/^\s*listen \[::\]:443 ssl http2;\n/m, ''],
    ['listen 80;', `listen 127.0.0.1:${values.httpPort};`],
    ['listen 443 ssl http2;', `listen 127.0.0.1:${values.httpsPort} ssl http2;`],
    [/server_name auth\.example\.org;/g, 'server_name 127.0.0.1;'],
    [/access_log \/var\/log\/nginx\/aa-oidc\.access\.log /g, `access_log ${values.accessLog} `],
    [
      'proxy_pass http://aa_oidc;',
      `proxy_pass http://aa_oidc;\n        add_header ${UPSTREAM} $upstream_addr always;`,
    ],
  ]);
}

/** The main nginx.conf around the site: in the foreground, every file under `prefix`. */
function nginxMainConfig(prefix: string): string {
  return `daemon off;
${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 256; }
http {
  access_log ${prefix}/access.log;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  include ${prefix}/aa-oidc.conf;
}
`;
}

/** Where nothing listens: nginx's instances until they do. */
const DISCARD_PORT = 9;

/**
 * Starts nginx in the foreground with the configuration under `prefix`; resolves once it listens,
 * which its pid file says (it writes it once it has bound its ports; a connection could reach
 * another process that took one first).
 */
async function startNginx(prefix: string): Promise<Child> {
  const pidFile = path.join(prefix, 'nginx.pid');
  rmSync(pidFile, { force: true });
  const child = startChild(NGINX, ['-e', 'stderr', '-p', prefix, '-c', path.join(prefix, 'nginx.conf')]);
  let ended = false;
  void child.exited.then(() => (ended = true));
  try {
    await waitUntil(() => ended || existsSync(pidFile), 'nginx writes its pid file');
  } catch (error) {
    await child.stop('SIGKILL');
    throw error;
  }
  if (ended) throw new Error(`nginx ended before it listened:\n${child.stderr()}`);
  return child;
}

/**
 * A logout receiver over TLS that records every logout token it gets, and can hold its answers;
 * counts the connections open to it at once.
 */
function logoutReceiver(cert: string, key: string) {
  interface Held {
    answer(): void;
    closed: boolean;
    jti: string;
    /** The sender's end of the connection: its local port. */
    from: number;
  }
  const delivered: string[] = [];
  const aborted: string[] = [];
  const held: Held[] = [];
  let holding = false;
  let answerFirst = 0;
  let open = 0;
  let mostOpen = 0;
  const server = https.createServer({ cert, key }, (request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token') ?? '';
      const jti = String(decodeJwt(token).jti);
      const entry: Held = {
        jti,
        from: request.socket.remotePort ?? 0,
        closed: false,
        answer() {
          if (entry.closed) return;
          delivered.push(jti);
          response.writeHead(200).end();
        },
      };
      response.on('close', () => {
        if (!response.writableFinished && !entry.closed) {
          entry.closed = true;
          aborted.push(jti);
        }
      });
      if (holding && answerFirst <= 0) held.push(entry);
      else {
        answerFirst -= 1;
        entry.answer();
      }
    });
  });
  server.on('secureConnection', (socket) => {
    open += 1;
    mostOpen = Math.max(mostOpen, open);
    socket.once('close', () => (open -= 1));
  });
  return {
    delivered,
    aborted,
    /** Requests waiting for an answer whose connection is still open (from these local ports). */
    waiting: (from?: ReadonlySet<number>) =>
      held.filter((entry) => !entry.closed && (from?.has(entry.from) ?? true)).length,
    /** The most connections that were open to the receiver at once. */
    mostOpen: () => mostOpen,
    /** Answers the next `first` requests, then holds every other one until `release`. */
    hold(first: number) {
      holding = true;
      answerFirst = first;
    },
    release() {
      holding = false;
      for (const entry of held.splice(0)) entry.answer();
    },
    async listen(): Promise<number> {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as net.AddressInfo).port;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A plain HTTP request from a chosen local address (a peer that is not the proxy). */
function directRequest(
  port: number,
  pathname: string,
  headers: Record<string, string>,
  localAddress: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port, path: pathname, headers, localAddress },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, body }));
      },
    );
    request.on('error', reject);
  });
}

/**
 * The local ports of a process's TCP connections to 127.0.0.1:`port` (Linux: its sockets in
 * /proc/<pid>/fd, their connections in /proc/<pid>/net/tcp).
 */
function connectionsOf(pid: number, port: number): Set<number> {
  const sockets = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode) sockets.add(inode);
  }
  // 127.0.0.1 and the port as /proc/net/tcp writes them: hexadecimal, the address in host order.
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const ports = new Set<number>();
  for (const line of readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[2] === remote && sockets.has(fields[9] ?? ''))
      ports.add(parseInt(fields[1]!.split(':')[1]!, 16));
  }
  return ports;
}

/**
 * Production behind nginx: two `serve` instances on one PostgreSQL database, nginx in front with
 * TLS (started from deploy/nginx/aa-oidc.conf with a certificate made here), X-Forwarded-* believed
 * from nginx's address only, two `aa-oidc worker` processes delivering back-channel logouts. Every
 * request of a client goes through nginx; which instance answered is read from a header the test's
 * nginx adds. nginx balances round robin with one worker process, so consecutive requests alternate
 * between the instances; `steerTo` uses that to send the next request to a chosen one.
 */
describe('two aa-oidc instances behind nginx, on one PostgreSQL database', { skip }, () => {
  let folder: string;
  let database: TestDatabase;
  let services: Services;
  let nginx: Child;
  const instances: Record<'a' | 'b', { port: number; child?: Child; upstream: string }> = {
    a: { port: 0, upstream: '' },
    b: { port: 0, upstream: '' },
  };
  const workers: Child[] = [];
  let edge: Endpoint;
  let httpPort: number;
  let cert: string;
  let certFile: string;
  let env: (extra?: Record<string, string>) => NodeJS.ProcessEnv;
  let client: Client;
  let admin: string;
  const receiver = { current: undefined as ReturnType<typeof logoutReceiver> | undefined };

  before(async () => {
    database = await createTestDatabase({ postgresUrl: (postgres as { url: string }).url });
    folder = database.dataDir;
    // The certificate nginx presents for 127.0.0.1, trusted by this process (and by the workers,
    // which deliver to a receiver using the same certificate).
    let keyFile: string;
    ({ certFile, keyFile } = loopbackCertificate(folder));
    cert = readFileSync(certFile, 'utf8');
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), cert]);

    // nginx starts first: the issuer the instances serve names its HTTPS port. Until the instances
    // listen it proxies to the discard port, where nothing listens; a reload then gives it theirs.
    const prefix = path.join(folder, 'nginx');
    for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
      mkdirSync(path.join(prefix, 'tmp', sub), { recursive: true });
    writeFileSync(path.join(prefix, 'nginx.conf'), nginxMainConfig(prefix));
    let httpsPort = 0;
    const writeSite = (instancePorts: [number, number]) =>
      writeFileSync(
        path.join(prefix, 'aa-oidc.conf'),
        nginxSiteFromDeployFile(readFileSync(DEPLOY_CONF, 'utf8'), {
          httpsPort,
          httpPort,
          instancePorts,
          cert: certFile,
          key: keyFile,
          accessLog: path.join(prefix, 'aa-oidc.access.log'),
        }),
      );
    nginx = await startOnFreePort(async (port) => {
      httpsPort = port;
      httpPort = await freePort();
      writeSite([DISCARD_PORT, DISCARD_PORT]);
      return startNginx(prefix);
    });
    edge = { origin: `https://127.0.0.1:${httpsPort}`, issuer: `https://127.0.0.1:${httpsPort}/o` };

    const secretKey = randomBytes(32).toString('base64url');
    env = (extra = {}) =>
      testEnv(database, {
        NODE_ENV: 'production',
        AA_OIDC_ISSUER: edge.issuer,
        AA_OIDC_SECRET_KEY: secretKey,
        AA_OIDC_HOST: '127.0.0.1',
        AA_OIDC_TRUST_PROXY: 'true',
        // nginx connects from 127.0.0.1; any other loopback address is a client reaching the port.
        AA_OIDC_TRUSTED_PROXIES: '127.0.0.1/32',
        AA_OIDC_METRICS_ENABLED: 'false',
        // Dedicated workers deliver the back-channel logouts; the receiver is on loopback.
        AA_OIDC_LOGOUT_DELIVER_IN_SERVE: 'false',
        AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true',
        AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION: 'true',
        AA_OIDC_LOGOUT_REQUEST_TIMEOUT_MS: '6000',
        NODE_EXTRA_CA_CERTS: certFile,
        ...extra,
      });

    // As an operator deploys: migrate once, then start the instances.
    const migrated = await spawnCli(['migrate'], env());
    assert.equal(migrated.code, 0, migrated.stderr);
    services = await createServices(loadConfig({ env: env() }));
    admin = `root${randomBytes(3).toString('hex')}`;
    await services.directoryAdmin.createUser({
      username: admin,
      password: PASSWORD,
      superuser: true,
      oidcAccess: true,
    });
    const created = await services.applications.create(
      { name: 'Wiki', redirectUris: [REDIRECT_URI], skipAuthorization: true },
      'test',
    );
    client = { clientId: created.application.clientId, clientSecret: created.clientSecret! };

    await Promise.all(
      (['a', 'b'] as const).map(async (name) => {
        instances[name].child = await startOnFreePort(async (port) => {
          instances[name].port = port;
          instances[name].upstream = `127.0.0.1:${port}`;
          const child = startCliProcess(['serve'], env({ AA_OIDC_PORT: String(port) }));
          await child.waitFor(/aa-oidc production server on/, 'the listening line');
          return child;
        });
      }),
    );
    writeSite([instances.a.port, instances.b.port]);
    nginx.process.kill('SIGHUP'); // nginx reads its configuration again
    const answered = new Set<string>();
    await waitUntil(async () => {
      const response = await fetch(`${edge.origin}/readyz`).catch(() => undefined);
      if (response?.status === 200) answered.add(response.headers.get(UPSTREAM) ?? '');
      return answered.has(instances.a.upstream) && answered.has(instances.b.upstream);
    }, 'nginx answers /readyz through both instances');
  });

  after(async () => {
    await Promise.allSettled([
      ...workers.map((worker) => worker.stop('SIGKILL')),
      instances.a.child?.stop('SIGKILL'),
      instances.b.child?.stop('SIGKILL'),
      nginx?.stop('SIGQUIT'),
      receiver.current?.close(),
    ]);
    await services?.close();
    await database?.drop();
  });

  /**
   * The instances nginx tried for a response, by the header it adds (`$upstream_addr`): one address,
   * or several when the first refused the connection and nginx moved the request on.
   */
  const triedFor = (headers: Headers): string[] => {
    const upstream = headers.get(UPSTREAM) ?? '';
    assert.ok(upstream !== '', 'nginx names the instance that answered');
    return upstream.split(',').map((address) => address.trim());
  };
  /** The instance that answered. */
  const servedBy = (headers: Headers): string => triedFor(headers).at(-1)!;
  const other = (upstream: string) =>
    upstream === instances.a.upstream ? instances.b.upstream : instances.a.upstream;

  /** Sends cheap requests until the next one will go to `upstream` (round robin alternates). */
  async function steerTo(upstream: string): Promise<void> {
    for (let tries = 0; tries < 4; tries += 1) {
      const response = await fetch(`${edge.origin}/healthz`);
      await response.arrayBuffer();
      if (servedBy(response.headers) !== upstream) return;
    }
    assert.fail(`nginx does not alternate between the instances`);
  }

  it('terminates TLS, redirects plain HTTP, and believes X-Forwarded-* from nginx only', async () => {
    const discovery = await fetch(`${edge.issuer}/.well-known/openid-configuration`);
    assert.equal(discovery.status, 200);
    assert.equal(((await discovery.json()) as { issuer: string }).issuer, edge.issuer);

    const plain = await fetch(`http://127.0.0.1:${httpPort}/o/.well-known/openid-configuration`, {
      redirect: 'manual',
    });
    assert.equal(plain.status, 301);
    assert.equal(plain.headers.get('location'), `https://127.0.0.1/o/.well-known/openid-configuration`);

    // A client that reaches an instance's port itself, claiming to come over https for the issuer's
    // host, is seen as what it is: plain HTTP, refused in production.
    const host = new URL(edge.issuer).host;
    const direct = await directRequest(
      instances.a.port,
      '/o/.well-known/openid-configuration',
      { 'x-forwarded-proto': 'https', 'x-forwarded-host': host, 'x-forwarded-for': '203.0.113.9', host },
      '127.0.0.2',
    );
    assert.equal(direct.status, 400);
    assert.match(direct.body, /answers only over https, through its reverse proxy/);
  });

  it('keeps query strings and the Referer out of its access log: no id_token_hint, token or code there', async () => {
    const marker = 'eyJhbGciOiJSUzI1NiJ9.query-string-marker.c2ln';
    const response = await fetch(`${edge.issuer}/logout/?id_token_hint=${marker}&code=${marker}`, {
      headers: { referer: `https://app.example.org/callback?code=${marker}` },
    });
    await response.arrayBuffer();
    const accessLog = path.join(folder, 'nginx', 'aa-oidc.access.log');
    await waitUntil(() => readFileSync(accessLog, 'utf8').includes('/o/logout/'), 'nginx logs the request');
    const logged = readFileSync(accessLog, 'utf8');
    assert.doesNotMatch(logged, /query-string-marker/, logged);
    assert.match(logged, /"GET \/o\/logout\/ HTTP\/[\d.]+" \d{3} /, logged);
  });

  it('redeems at one instance a code the other issued', async () => {
    const browser = new Browser();
    await login(edge, client, admin, { browser });
    let crossed = false;
    for (let attempt = 0; attempt < 4 && !crossed; attempt += 1) {
      const { params, verifier } = authorizeParams(client);
      const issued = await browser.follow(
        `${edge.issuer}/authorize/?${new URLSearchParams(params)}`,
        edge.origin,
      );
      const code = codeFrom(issued);
      const issuer = servedBy(issued.headers);
      await steerTo(other(issuer));
      const exchanged = await tokenRequest(edge, client, {
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
      assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
      crossed = servedBy(exchanged.headers) === other(issuer);
      const info = await userinfo(edge, exchanged.body.access_token as string);
      assert.equal(info.status, 200);
    }
    assert.ok(crossed, 'a code issued by one instance was redeemed at the other');
  });

  it('hands a long state back to the application after sign-in, not a 502 for a header too big', async () => {
    // 7,000 characters: as long as fits nginx's request line (8 KiB); the redirect's header is larger
    // than nginx's default buffer for an answer's header (4 KiB).
    const state = randomBytes(3500).toString('hex');
    const { response, verifier } = await authorize(edge, new Browser(), client, admin, { state });
    assert.equal(response.status, 303, `the redirect to the application, not ${response.status}`);
    assert.equal(new URL(response.headers.get('location')!).searchParams.get('state'), state);
    const exchanged = await tokenRequest(edge, client, {
      grant_type: 'authorization_code',
      code: codeFrom(response),
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
    });
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
  });

  it('rotates a refresh token at one instance and catches its replay at the other', async () => {
    const first = await login(edge, client, admin);
    const rotated = await tokenRequest(edge, client, {
      grant_type: 'refresh_token',
      refresh_token: first.refreshToken,
    });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const rotatedAt = servedBy(rotated.headers);
    const second = rotated.body as { access_token: string; refresh_token: string };

    await steerTo(other(rotatedAt));
    const replay = await tokenRequest(edge, client, {
      grant_type: 'refresh_token',
      refresh_token: first.refreshToken,
    });
    assert.equal(servedBy(replay.headers), other(rotatedAt), 'the replay reached the other instance');
    assert.equal(replay.status, 400);
    assert.equal(replay.body.error, 'invalid_grant');
    // The replay revoked the whole grant, at both instances.
    for (const upstream of [rotatedAt, other(rotatedAt)]) {
      await steerTo(upstream);
      const seen = await introspect(edge, client, second.refresh_token);
      assert.equal(servedBy(seen.headers), upstream);
      assert.equal(seen.body.active, false);
    }
  });

  it('serves a key rotation made in the admin console through one instance from both within seconds', async () => {
    const console = await consoleSignIn(edge, admin);
    const before = (await services.keys.list())
      .filter((key) => key.status !== 'retired')
      .map((key) => key.kid);
    const page = await consoleGet(console, `${edge.origin}/admin/keys/rotate`);
    assert.equal(page.status, 200);
    // Forced: the next key was created when the instances started, a moment ago.
    const rotated = await consolePost(console, `${edge.origin}/admin/keys/rotate`, page.csrf!, {
      force: 'yes',
    });
    assert.equal(rotated.status, 303);
    const after = await services.keys.list();
    const active = after.find((key) => key.status === 'active')!.kid;
    const next = after.find((key) => key.status === 'next')!.kid;
    assert.ok(
      before.includes(active) && !before.includes(next),
      'the next key became active, a new one is next',
    );

    // Each instance learns of the rotation from the database (keys.reloadIntervalMs, 2 s by default).
    const published = new Map<string, boolean>();
    await waitUntil(
      async () => {
        const response = await fetch(`${edge.issuer}/.well-known/jwks.json`);
        const kids = ((await response.json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);
        published.set(servedBy(response.headers), kids.includes(next));
        return published.get(instances.a.upstream) === true && published.get(instances.b.upstream) === true;
      },
      'both instances publish the new next key',
      20_000,
    );
    for (const upstream of [instances.a.upstream, instances.b.upstream]) {
      await steerTo(upstream);
      const tokens = await login(edge, client, admin);
      assert.equal(decodeProtectedHeader(tokens.idToken!).kid, active, `${upstream} signs with the new key`);
    }
  });

  it('refuses at the other instance a user deactivated in the admin console through one', async () => {
    const leaver = `leaver${randomBytes(3).toString('hex')}`;
    const created = await services.directoryAdmin.createUser({
      username: leaver,
      password: PASSWORD,
      oidcAccess: true,
    });
    const tokens = await login(edge, client, leaver);
    for (const upstream of [instances.a.upstream, instances.b.upstream]) {
      await steerTo(upstream);
      assert.equal((await userinfo(edge, tokens.accessToken)).status, 200, `${upstream} knows the user`);
    }

    const console = await consoleSignIn(edge, admin);
    const deactivate = `${edge.origin}/admin/users/${created.user.id}/deactivate`;
    const page = await consoleGet(console, deactivate);
    assert.equal(page.status, 200);
    const deactivated = await console.fetch(deactivate, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: edge.origin },
      body: new URLSearchParams({ csrf_token: page.csrf! }).toString(),
    });
    assert.equal(deactivated.status, 303);
    await deactivated.arrayBuffer();
    const through = servedBy(deactivated.headers);

    await steerTo(other(through));
    const refused = await fetch(`${edge.issuer}/userinfo/`, {
      headers: { authorization: `Bearer ${tokens.accessToken}` },
    });
    await refused.arrayBuffer();
    assert.equal(servedBy(refused.headers), other(through), 'the next request reached the other instance');
    assert.equal(refused.status, 401, 'the other instance refuses the access token');
    await steerTo(other(through));
    const refresh = await tokenRequest(edge, client, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refreshToken,
    });
    assert.equal(servedBy(refresh.headers), other(through));
    assert.equal(refresh.body.error, 'invalid_grant', 'and the refresh token');
  });

  /** Back-channel logout jobs whose outcome is recorded (pg-boss marks them completed). */
  const completedLogoutJobs = async (): Promise<number> => {
    const { rows } = await sql<{ count: number }>`
      select count(*)::int as count from ${sql.table(`${PGBOSS_SCHEMA}.job`)}
       where name = ${BCL_QUEUE} and state = 'completed'`.execute(services.database.db);
    return rows[0]!.count;
  };

  it('delivers a back-channel fan-out with two workers, none twice and none lost when one is SIGKILLed midway', async () => {
    const bcl = logoutReceiver(cert, readFileSync(path.join(folder, 'key.pem'), 'utf8'));
    receiver.current = bcl;
    const port = await bcl.listen();
    // Applications sharing one origin by path, one logout each (fewer than an application's lanes):
    // enough that each worker fills all of its lanes with the first claim, the first four answered
    // at once, and some are left over.
    const LANES = DEFAULT_WORKER_CONCURRENCY;
    const APPS = 4 + 2 * LANES + 4;
    const clients: Client[] = [];
    for (let index = 0; index < APPS; index += 1) {
      const created = await services.applications.create(
        {
          name: `Fan-out ${index}`,
          redirectUris: [REDIRECT_URI],
          skipAuthorization: true,
          backchannelLogoutUri: `https://127.0.0.1:${port}/logout/${index}`,
        },
        'test',
      );
      clients.push({ clientId: created.application.clientId, clientSecret: created.clientSecret! });
    }
    const member = `member${randomBytes(3).toString('hex')}`;
    await services.directoryAdmin.createUser({ username: member, password: PASSWORD, oidcAccess: true });
    const browser = new Browser();
    for (const each of clients) await login(edge, each, member, { browser });

    for (let index = 0; index < 2; index += 1) {
      const worker = startCliProcess(['worker'], env({ AA_OIDC_LOG_LEVEL: 'warn' }));
      workers.push(worker);
      await worker.waitFor(/back-channel logout worker/);
    }
    // The first four are answered at once; then every delivery waits. Each worker claims a job for
    // each of its lanes (its concurrency) and claims no more while they are taken (four free lanes
    // are not worth a claim): together they claim all but the last eight, and every claimed logout
    // is on the wire, since the origin's pool has a connection for every lane of its worker,
    // whichever application the lane delivers for. Nobody is then between an answer and its record.
    bcl.hold(4);
    const completedBefore = await completedLogoutJobs();
    const deactivated = await spawnCli(['user', 'deactivate', member], env());
    assert.equal(deactivated.code, 0, deactivated.stderr);
    await waitUntil(
      () => bcl.waiting() === 2 * LANES - 4,
      `both workers wait on ${2 * LANES - 4} deliveries`,
      60_000,
      20,
    );
    assert.equal(bcl.delivered.length, 4);
    // A lane is free for the next delivery as soon as an answer arrives, before that answer's
    // outcome is committed: the lanes can all be waiting while an outcome is still on its way to the
    // database. Killed then, that delivery would be sent again (at least once, by design); the kill
    // comes once the four answered deliveries are recorded, so that it interrupts only sends.
    await waitUntil(
      async () => (await completedLogoutJobs()) === completedBefore + 4,
      'the four answered deliveries are recorded',
      60_000,
      20,
    );
    // Each worker's connections hold no more than its lanes.
    assert.ok(bcl.mostOpen() <= 2 * LANES, `${bcl.mostOpen()} connections open at once`);

    // The deliveries the worker about to be killed has sent: each is interrupted, and is sent again
    // by the other worker once its claim lapses. Only once the receiver has seen every one of them
    // interrupted are the others answered: answered before it noticed, one of them would count as
    // delivered although its sender died waiting, and its resending as a second delivery.
    const killedSends = connectionsOf(workers[0]!.process.pid!, port);
    const interrupted = bcl.waiting(killedSends);
    assert.ok(
      interrupted >= LANES - 4 && interrupted <= LANES,
      `the worker to be killed waits on ${interrupted} deliveries, all of its lanes`,
    );
    await workers[0]!.stop('SIGKILL');
    await waitUntil(
      () => bcl.waiting(killedSends) === 0,
      `the killed worker’s ${interrupted} connections close`,
      30_000,
      20,
    );
    assert.equal(bcl.aborted.length, interrupted, 'only the killed worker’s deliveries were interrupted');
    assert.equal(bcl.waiting(), 2 * LANES - 4 - interrupted, 'the other worker still waits on its own');
    bcl.release();

    // The killed worker's claims lapse (2 × requestTimeoutMs + 1 s) and the other worker takes them.
    await waitUntil(() => new Set(bcl.delivered).size === APPS, `all ${APPS} logouts delivered`, 120_000);
    assert.equal(bcl.delivered.length, APPS, `no logout delivered twice: ${bcl.delivered.join(' ')}`);
    for (const jti of bcl.aborted)
      assert.ok(bcl.delivered.includes(jti), 'an interrupted delivery was retried');
    assert.ok(bcl.mostOpen() <= 2 * LANES, `${bcl.mostOpen()} connections open at once`);
    assert.equal(workers[0]!.process.exitCode ?? workers[0]!.process.signalCode, 'SIGKILL');
  });

  it('lets requests in flight finish on SIGTERM while nginx sends new ones to the other instance', async () => {
    const tokens = await login(edge, client, admin);
    // Hold every read of the token table, so that a userinfo request stays in flight at each
    // instance: one request at a time, steered, so that neither depends on two concurrent requests
    // being spread by round robin.
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    const waitingOnLock = async (): Promise<number> => {
      const { rows } = await locker.query<{ waiting: number }>(
        "select count(*)::int as waiting from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
      );
      return rows[0]!.waiting;
    };
    try {
      await locker.query('begin');
      await locker.query('lock table oidc_payload in access exclusive mode');
      const userinfoInFlight = () =>
        fetch(`${edge.issuer}/userinfo/`, {
          headers: { authorization: `Bearer ${tokens.accessToken}` },
        }).then(async (response) => ({
          status: response.status,
          upstream: servedBy(response.headers),
          body: await response.text(),
        }));
      await steerTo(instances.a.upstream);
      const inFlight = [userinfoInFlight()];
      await waitUntil(async () => (await waitingOnLock()) >= 1, 'instance A waits on the locked table');
      // Round robin: the request after A's goes to B.
      inFlight.push(userinfoInFlight());
      await waitUntil(
        async () => (await waitingOnLock()) >= 2,
        'instance B waits on the locked table too',
      ).catch(async (error: Error) => {
        // What each connection does, and any answer that came back without waiting: says why.
        const { rows } = await locker.query(
          'select application_name, client_port, state, wait_event_type, wait_event, left(query, 100) as query from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
        );
        const answered = await Promise.all(
          inFlight.map((each) =>
            Promise.race([each, new Promise((resolve) => setTimeout(resolve, 100, 'pending'))]),
          ),
        );
        throw new Error(
          `${error.message}; answers: ${JSON.stringify(answered)}; connections: ${JSON.stringify(rows)}`,
        );
      });

      const stopping = instances.a.child!;
      let exited = false;
      void stopping.exited.then(() => (exited = true));
      stopping.process.kill('SIGTERM');
      await waitUntil(() => refusesConnections(instances.a.port), 'instance A stops accepting connections');
      const tried: string[][] = [];
      for (let index = 0; index < 6; index += 1) {
        const response = await fetch(`${edge.issuer}/.well-known/jwks.json`);
        assert.equal(response.status, 200);
        await response.arrayBuffer();
        assert.equal(servedBy(response.headers), instances.b.upstream, 'new requests go to instance B');
        tried.push(triedFor(response.headers));
      }
      // Round robin tried A once, which refused the connection, and moved that request on to B; then
      // A counts as down (max_fails=1) and nginx stops trying it.
      const viaA = tried.filter((each) => each.length > 1);
      assert.deepEqual(viaA, [[instances.a.upstream, instances.b.upstream]], JSON.stringify(tried));
      assert.equal(exited, false, 'instance A waits for its request in flight');

      await locker.query('commit');
      const answers = await Promise.all(inFlight);
      for (const answer of answers) assert.equal(answer.status, 200, answer.body);
      assert.deepEqual(
        answers.map((answer) => answer.upstream).sort(),
        [instances.a.upstream, instances.b.upstream].sort(),
      );
      assert.equal(await stopping.exited, 0, 'instance A exits cleanly once its requests are answered');
    } finally {
      await locker.end();
    }
  });
});
