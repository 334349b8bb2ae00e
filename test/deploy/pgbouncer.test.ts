import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { loadConfig } from '../../src/config/load.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { isDatabaseUnavailable } from '../../src/db/errors.ts';
import { selectProfileById } from '../../src/directory/builtin/queries.ts';
import { createServices, type Services } from '../../src/services.ts';
import {
  allianceAuthEnv,
  allianceAuthUnavailable,
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
} from '../helpers/alliance-auth.ts';
import { type Child, startChild } from '../helpers/child-process.ts';
import { cli, spawnCli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { connect, createTestDatabase, reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { commandUnavailable, missing } from '../helpers/e2e.ts';
import { type Client, introspect, login, tokenRequest, userinfo } from '../helpers/flows.ts';
import { Browser, type Endpoint, PASSWORD, REDIRECT_URI, startOnFreePort } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';
import { loopbackCertificate } from '../helpers/certificate.ts';
import { type Receiver, startReceiver } from '../logout/helpers.ts';

/** Debian's PgBouncer (in /usr/sbin, which a non-root PATH may lack). */
const PGBOUNCER = existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer';

/**
 * The connections one aa-oidc process opens at most (docs/deployment.md): its pool of 10 and the
 * pipelined connection of its frequent reads. PgBouncer here admits no more clients than that, so
 * a process that opened one more would see it refused.
 */
const CONNECTIONS_PER_PROCESS = 11;

const postgres = await reachablePostgres();
const skip =
  commandUnavailable(PGBOUNCER, ['--version'], 'pgbouncer') ||
  ('missing' in postgres ? missing(postgres.missing) : false);
const tlsSkip = skip || commandUnavailable('openssl', ['version'], 'openssl');
const aaSkip = skip || (await allianceAuthUnavailable('postgres'));

/** PgBouncer's version, e.g. [1, 18] ([0, 0] when it cannot be read). */
function pgbouncerVersion(): [number, number] {
  try {
    const match = /PgBouncer (\d+)\.(\d+)/.exec(execFileSync(PGBOUNCER, ['--version'], { encoding: 'utf8' }));
    return match ? [Number(match[1]), Number(match[2])] : [0, 0];
  } catch {
    return [0, 0];
  }
}

/**
 * Starts Debian's PgBouncer on a free loopback port in front of the PostgreSQL server of `database`
 * (trust authentication), its files in the database's folder, and resolves once it listens; `url`
 * reaches that database through it. `restart` starts it again on its port, after a kill.
 */
async function startPgbouncer(
  database: Pick<TestDatabase, 'url' | 'dataDir'>,
  pooling: {
    mode: 'session' | 'transaction';
    serverConnections: number;
    maxClients: number;
    /** PgBouncer's `ignore_startup_parameters`. */
    ignoreStartupParameters?: string;
  },
  /** TLS required from clients, with this certificate and key (files). */
  tls?: { certFile: string; keyFile: string },
): Promise<{ url: string; restart: () => Promise<Child>; running: () => Child }> {
  const direct = new URL(database.url);
  const folder = database.dataDir;
  const usersFile = path.join(folder, 'pgbouncer-users.txt');
  const [major, minor] = pgbouncerVersion();
  writeFileSync(usersFile, `"${decodeURIComponent(direct.username || 'postgres')}" ""\n`, { mode: 0o644 });
  // PgBouncer refuses to run as root: as root, it switches to the postgres account (`-u`), which
  // must be able to read its files.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chmodSync(folder, 0o755);
  const start = async (configFile: string) => {
    const child = startChild(PGBOUNCER, [...(asRoot ? ['-u', 'postgres'] : []), configFile]);
    await child.waitFor(/listening on 127\.0\.0\.1:\d+/, 'PgBouncer listening');
    return child;
  };
  let configFile = '';
  const through = new URL(direct);
  through.hostname = '127.0.0.1';
  through.password = '';
  let child = await startOnFreePort(async (port) => {
    through.port = String(port);
    configFile = path.join(folder, `pgbouncer-${port}.ini`);
    writeFileSync(
      configFile,
      `[databases]
* = host=${direct.hostname} port=${direct.port || '5432'}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${usersFile}
pool_mode = ${pooling.mode}
max_client_conn = ${pooling.maxClients}
default_pool_size = ${pooling.serverConnections}
; a client over the limit is refused at once rather than queued
query_wait_timeout = 5
${
  // From 1.21 PgBouncer can track prepared statements itself in transaction mode; 0 is the setting
  // that does not (and the only behaviour before 1.21).
  major > 1 || (major === 1 && minor >= 21) ? 'max_prepared_statements = 0\n' : ''
}${pooling.ignoreStartupParameters ? `ignore_startup_parameters = ${pooling.ignoreStartupParameters}\n` : ''}${
        tls
          ? `client_tls_sslmode = require\nclient_tls_cert_file = ${tls.certFile}\nclient_tls_key_file = ${tls.keyFile}\n`
          : ''
      }`,
      { mode: 0o644 },
    );
    return start(configFile);
  });
  return {
    url: through.href,
    running: () => child,
    async restart() {
      child = await start(configFile);
      return child;
    },
  };
}

/**
 * As an operator deploys, through `databaseUrl`: `aa-oidc migrate`, then `serve` on a free loopback
 * port. The member `pilot` and the application `Wiki` are seeded through `services`, which reach
 * PostgreSQL directly (the caller closes them): PgBouncer's clients are the server's alone.
 */
async function deployThrough(
  database: TestDatabase,
  databaseUrl: string,
  options: { backchannelLogoutUri?: string } = {},
): Promise<{
  server: Endpoint;
  client: Client;
  member: { id: number; username: string };
  services: Services;
  serve: Child;
}> {
  const allowPrivate: Record<string, string> = options.backchannelLogoutUri
    ? { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' }
    : {};
  const env = (port: number) =>
    testEnv(database, {
      AA_OIDC_DATABASE_URL: databaseUrl,
      AA_OIDC_ISSUER: `http://127.0.0.1:${port}/o`,
      AA_OIDC_PORT: String(port),
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_METRICS_ENABLED: 'false',
      ...allowPrivate,
    });
  // The port is the server's to pick when it starts: migrate listens on none.
  const migrated = await spawnCli(['migrate'], env(0));
  assert.equal(migrated.code, 0, migrated.stderr);
  const services = await createServices(loadConfig({ env: testEnv(database, allowPrivate) }));
  const created = await services.directoryAdmin.createUser({
    username: 'pilot',
    password: PASSWORD,
    oidcAccess: true,
  });
  const application = await services.applications.create(
    {
      name: 'Wiki',
      redirectUris: [REDIRECT_URI],
      skipAuthorization: true,
      ...(options.backchannelLogoutUri ? { backchannelLogoutUri: options.backchannelLogoutUri } : {}),
    },
    'test',
  );
  let server: Endpoint = { origin: '', issuer: '' };
  const serve = await startOnFreePort(async (port) => {
    server = { origin: `http://127.0.0.1:${port}`, issuer: `http://127.0.0.1:${port}/o` };
    const started = startCliProcess(['serve'], env(port));
    await started.waitFor(/aa-oidc development server on/, 'the listening line');
    return started;
  });
  return {
    server,
    client: { clientId: application.application.clientId, clientSecret: application.clientSecret! },
    member: { id: created.user.id, username: created.user.username },
    services,
    serve,
  };
}

/**
 * Through a connection pooler: `aa-oidc migrate` and `serve` reach PostgreSQL through
 * Debian's PgBouncer in session mode (what docs/deployment.md asks of a pooler), with room for no
 * more clients than one process opens. Sign-in, the token endpoint, introspection and userinfo under
 * concurrent requests, back-channel logout queued in pg-boss and delivered by `serve`'s worker, and
 * a restart of PgBouncer under a running `serve`.
 */
describe('aa-oidc through PgBouncer (session pooling)', { skip }, () => {
  let database: TestDatabase;
  let services: Services;
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>>;
  let serve: Child | undefined;
  let receiver: Receiver;
  let server: Endpoint;
  let client: Client;
  let member: { id: number; username: string };

  before(async () => {
    database = await createTestDatabase({ postgresUrl: (postgres as { url: string }).url });
    bouncer = await startPgbouncer(database, {
      mode: 'session',
      serverConnections: CONNECTIONS_PER_PROCESS,
      maxClients: CONNECTIONS_PER_PROCESS,
    });

    receiver = await startReceiver((_request, response) => response.end());
    ({ server, client, member, services, serve } = await deployThrough(database, bouncer.url, {
      backchannelLogoutUri: receiver.url(),
    }));
  });

  after(async () => {
    await serve?.stop('SIGKILL');
    await bouncer?.running().stop('SIGKILL');
    await receiver?.close();
    await services?.close();
    await database?.drop();
  });

  it('signs in and answers the token endpoint, introspection and userinfo, 48 requests at a time', async () => {
    const browser = new Browser();
    const signedIn = await login(server, client, member.username, { browser });
    const requests = Array.from({ length: 48 }, async (_, index) => {
      if (index % 3 === 0) {
        const answer = await introspect(server, client, signedIn.accessToken);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.body.active, true);
      } else if (index % 3 === 1) {
        const answer = await userinfo(server, signedIn.accessToken);
        assert.equal(answer.status, 200, answer.body);
        assert.equal(JSON.parse(answer.body).preferred_username, member.username);
      } else {
        // Each sign-in's refresh token rotates once; a fresh sign-in (the session is reused).
        const again = await login(server, client, member.username, { browser });
        const rotated = await tokenRequest(server, client, {
          grant_type: 'refresh_token',
          refresh_token: again.refreshToken,
        });
        assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      }
    });
    const outcomes = await Promise.allSettled(requests);
    const failed = outcomes.filter((outcome) => outcome.status === 'rejected');
    assert.deepEqual(
      failed.map((outcome) => String((outcome as PromiseRejectedResult).reason)),
      [],
      `every request answered (serve's output:\n${serve!.stderr().slice(-2000)})`,
    );
  });

  it('queues a back-channel logout in pg-boss and delivers it from serve', async () => {
    const held = await login(server, client, member.username);
    const sid = decodeJwt(held.idToken!).sid;
    const delivered = receiver.requests.length;
    await services.directoryAdmin.deactivate({ id: member.id });
    await waitUntil(() => receiver.requests.length > delivered, 'the logout reaches the application', 30_000);
    const token = decodeJwt(new URLSearchParams(receiver.requests.at(-1)!.body).get('logout_token')!);
    assert.equal(token.sub, String(member.id));
    assert.equal(token.aud, client.clientId);
    assert.ok(sid === undefined || token.sid !== undefined, 'a session-bound logout names a session');
    const answer = await introspect(server, client, held.accessToken);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.active, false, 'the deactivated member’s token is no longer active');
    await services.directoryAdmin.activate({ id: member.id });
  });

  it('answers again once a restarted PgBouncer is back', async () => {
    await bouncer.running().stop('SIGKILL');
    await bouncer.restart();
    // The connections PgBouncer closed fail at most the requests that were on them; the pool opens
    // new ones for the next requests.
    await waitUntil(
      async () => (await fetch(`${server.origin}/readyz`)).status === 200,
      'serve is ready through the new PgBouncer',
      30_000,
    );
    const signedIn = await login(server, client, member.username);
    const answer = await introspect(server, client, signedIn.accessToken);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.active, true);
  });
});

/**
 * A pooler that passes server connections from client to client (PgBouncer's transaction mode, which
 * before 1.21, or with `max_prepared_statements = 0`, does not track prepared statements): a
 * statement prepared through one of aa-oidc's connections is found on the server connection
 * another one is given. With one server connection behind the pooler, the second client to prepare
 * a statement always meets the first's. aa-oidc fails that statement as a database it cannot use
 * (answered 503), with a message that says what to change, rather than pg's bare error.
 */
describe(
  'aa-oidc through PgBouncer passing server connections between clients (transaction pooling)',
  { skip },
  () => {
    let database: TestDatabase;
    let bouncer: Awaited<ReturnType<typeof startPgbouncer>>;
    let handle: DatabaseHandle;
    let userId: number;

    before(async () => {
      database = await createTestDatabase({ postgresUrl: (postgres as { url: string }).url, migrated: true });
      bouncer = await startPgbouncer(database, { mode: 'transaction', serverConnections: 1, maxClients: 20 });
      handle = connect({ ...database, url: bouncer.url });
      const services = await createServices(loadConfig({ env: testEnv(database) }));
      try {
        userId = (await services.directoryAdmin.createUser({ username: 'pilot', oidcAccess: true })).user.id;
      } finally {
        await services.close();
      }
    });
    after(async () => {
      await handle?.close();
      await bouncer?.running().stop('SIGKILL');
      await database?.drop();
    });

    const explained = (error: unknown) => {
      assert.ok(isDatabaseUnavailable(error), `answered as a database that cannot be used: ${String(error)}`);
      assert.match(
        (error as Error).message,
        /prepared statement "aa_[0-9a-f]+_\d+": a connection pooler .* use pool_mode = session, or PgBouncer 1\.21 or later with max_prepared_statements set/,
      );
      return true;
    };

    it('fails a statement prepared through another of its connections, saying what to change', async () => {
      // Two of the pool's connections, held at once; each prepares the same statement in turn.
      await handle.db.connection().execute(async (first) => {
        await handle.db.connection().execute(async (second) => {
          assert.equal((await selectProfileById(first, userId))?.user.username, 'pilot');
          await assert.rejects(selectProfileById(second, userId), explained);
        });
      });
    });

    it('fails a read of the pipelined connection the same way', async () => {
      // The statement is prepared on the one server connection (through a pool connection); the
      // pipelined reads' connection then prepares it too.
      await handle.db.connection().execute((first) => selectProfileById(first, userId));
      await assert.rejects(selectProfileById(handle.db, userId), explained);
    });
  },
);

/**
 * TLS between aa-oidc and PostgreSQL: PgBouncer requires it from its clients, with a certificate for
 * 127.0.0.1 made here. The URL's `sslmode=verify-full&sslrootcert=FILE` (node-postgres's reading of
 * the URL) carries every connection: the pool's, the pipelined reads' and pg-boss's. A certificate
 * that is not trusted, or not issued for the host, stops the command with what to change, and, met
 * while `serve` runs, makes requests answer 503 "try again" (not 500) until one is trusted again.
 */
describe('aa-oidc to PostgreSQL over TLS (PgBouncer requiring it from clients)', { skip: tlsSkip }, () => {
  let database: TestDatabase;
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>>;
  let serve: Child | undefined;
  let certFile: string;
  let keyFile: string;
  /** A copy of the authority's certificate PgBouncer first presents: what `serve` trusts. */
  let trustedCa: string;
  let withTls: (host: string, parameters: Record<string, string>) => string;
  let server: Endpoint;
  let client: Client;

  before(async () => {
    database = await createTestDatabase({ postgresUrl: (postgres as { url: string }).url });
    ({ certFile, keyFile } = loopbackCertificate(database.dataDir, 'pgbouncer-'));
    trustedCa = path.join(database.dataDir, 'trusted-ca.pem');
    copyFileSync(certFile, trustedCa);
    chmodSync(keyFile, 0o644);
    bouncer = await startPgbouncer(
      database,
      { mode: 'session', serverConnections: CONNECTIONS_PER_PROCESS, maxClients: 30 },
      { certFile, keyFile },
    );
    withTls = (host, parameters) => {
      const url = new URL(bouncer.url);
      url.hostname = host;
      for (const [name, value] of Object.entries(parameters)) url.searchParams.set(name, value);
      return url.href;
    };
  });
  after(async () => {
    await serve?.stop('SIGKILL');
    await bouncer?.running().stop('SIGKILL');
    await database?.drop();
  });

  it('migrates and serves with sslmode=verify-full and the authority’s certificate', async () => {
    const url = withTls('127.0.0.1', { sslmode: 'verify-full', sslrootcert: trustedCa });
    let services: Services;
    ({ server, client, services, serve } = await deployThrough(database, url));
    await services.close();
    const signedIn = await login(server, client, 'pilot');
    const answer = await introspect(server, client, signedIn.accessToken);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.active, true);
    const info = await userinfo(server, signedIn.accessToken);
    assert.equal(info.status, 200, info.body);
  });

  it('says what to change when the certificate is not trusted, or not issued for the host', async () => {
    const untrusted = await spawnCli(
      ['user', 'list'],
      testEnv(database, { AA_OIDC_DATABASE_URL: withTls('127.0.0.1', { sslmode: 'verify-full' }) }),
    );
    assert.equal(untrusted.code, 1);
    assert.match(
      untrusted.stderr,
      /\): the server's TLS certificate is not trusted \(self-signed certificate.*\); give the certificate of its authority in AA_OIDC_DATABASE_URL \(sslmode=verify-full&sslrootcert=\/path\/to\/ca\.pem\)/,
    );
    const otherName = await spawnCli(
      ['user', 'list'],
      testEnv(database, {
        AA_OIDC_DATABASE_URL: withTls('localhost', { sslmode: 'verify-full', sslrootcert: certFile }),
      }),
    );
    assert.equal(otherName.code, 1);
    assert.match(
      otherName.stderr,
      /\): the server's TLS certificate is not issued for localhost \(.*\); connect with a host name the certificate names\n$/,
    );
  });

  it('answers 503 "try again" while the server presents a certificate it does not trust, and serves once it does', async () => {
    const signedIn = await login(server, client, 'pilot');
    const refresh = () =>
      tokenRequest(server, client, { grant_type: 'refresh_token', refresh_token: signedIn.refreshToken });
    // PgBouncer comes back with a new certificate (a renewal by another authority, say): the
    // connections it closed are opened again, and the new certificate is refused.
    const saved = { cert: `${certFile}.first`, key: `${keyFile}.first` };
    copyFileSync(certFile, saved.cert);
    copyFileSync(keyFile, saved.key);
    await bouncer.running().stop('SIGKILL');
    loopbackCertificate(database.dataDir, 'pgbouncer-');
    chmodSync(keyFile, 0o644);
    await bouncer.restart();
    const refused = await refresh();
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'temporarily_unavailable');
    await waitUntil(
      () =>
        serve!
          .stdout()
          .split('\n')
          .some(
            (line) =>
              line.includes('"msg":"the database is unavailable; answering 503 until it returns"') &&
              line.includes('"code":"DEPTH_ZERO_SELF_SIGNED_CERT"'),
          ),
      'serve logs why it answers 503',
      10_000,
    );
    // The first certificate again: the next requests are served.
    await bouncer.running().stop('SIGKILL');
    copyFileSync(saved.cert, certFile);
    copyFileSync(saved.key, keyFile);
    await bouncer.restart();
    const served = await refresh();
    assert.equal(served.status, 200, JSON.stringify(served.body));
  });

  it('says so when the URL asks for TLS and the server does not offer it', async () => {
    // A PgBouncer of its own, without TLS.
    const plain = await startPgbouncer(database, { mode: 'session', serverConnections: 2, maxClients: 4 });
    const child = plain.running();
    const url = new URL(plain.url);
    url.searchParams.set('sslmode', 'verify-full');
    const run = await spawnCli(['user', 'list'], testEnv(database, { AA_OIDC_DATABASE_URL: url.href }));
    await child.stop('SIGKILL');
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /^aa-oidc: cannot connect to PostgreSQL at 127\.0\.0\.1:\d+ \(database \w+\) \(AA_OIDC_DATABASE_URL\): the server does not accept TLS connections; enable ssl on the server, or remove sslmode from AA_OIDC_DATABASE_URL\n$/,
    );
  });
});

/**
 * Alliance Auth's PostgreSQL behind PgBouncer (AA's own pooler, say): aa-oidc asks for read-only
 * sessions with the startup parameter `options`, which PgBouncer refuses unless told to ignore it.
 * The refusal stops the command with what to change; with `ignore_startup_parameters = options` the
 * directory reads through PgBouncer (read-only then by the login's grants alone).
 */
describe("Alliance Auth's PostgreSQL behind PgBouncer", { skip: aaSkip }, () => {
  let fixture: AllianceAuthTestDatabase;
  let database: TestDatabase;
  let folder: string;
  const started: Child[] = [];

  before(async () => {
    fixture = await createAllianceAuthDatabase('postgres');
    database = await createTestDatabase({ migrated: true });
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-aa-pgbouncer-'));
  });
  after(async () => {
    for (const child of started) await child.stop('SIGKILL');
    await database?.drop();
    await fixture?.drop();
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  /** The reader's URL through a PgBouncer of its own, started with `ignoreStartupParameters`. */
  const readerThrough = async (ignoreStartupParameters?: string) => {
    const bouncer = await startPgbouncer(
      { url: fixture.readerUrl, dataDir: folder },
      {
        mode: 'session',
        serverConnections: 5,
        maxClients: 10,
        ...(ignoreStartupParameters && { ignoreStartupParameters }),
      },
    );
    started.push(bouncer.running());
    return bouncer.url;
  };
  const listUsers = (url: string) => cli(['user', 'list'], testEnv(database, allianceAuthEnv(url)));

  it('says what to change when PgBouncer refuses the read-only sessions’ startup parameter', async () => {
    const result = await listUsers(await readerThrough());
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /cannot connect to Alliance Auth's database at .* \(AA_OIDC_AA_DATABASE_URL\): a pooler in front of PostgreSQL \(PgBouncer\) refuses the startup parameter "options", with which aa-oidc makes its sessions read-only and limits a statement's time \(unsupported startup parameter: options\); connect to PostgreSQL directly, or add options to PgBouncer's ignore_startup_parameters \(the login's SELECT-only grants then keep aa-oidc from writing\)\n$/,
    );
  });

  it('reads the directory through a PgBouncer that ignores it', async () => {
    const result = await listUsers(await readerThrough('options'));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /alice/);
  });
});
