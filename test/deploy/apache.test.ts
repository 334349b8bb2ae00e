import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/services.ts';
import { apacheUnavailable, type RunningApache, startApache } from '../helpers/apache.ts';
import { loopbackCertificate } from '../helpers/certificate.ts';
import type { Child } from '../helpers/child-process.ts';
import { spawnCli, startCliProcess } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { commandUnavailable } from '../helpers/e2e.ts';
import { authorize, type Client, exchangeCode, login, userinfo } from '../helpers/flows.ts';
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

const DEPLOY_CONF = fileURLToPath(new URL('../../deploy/apache/aa-oidc.conf', import.meta.url));

/** The modules the recipe's `a2enmod` line enables, with what Debian enables beside them. */
const MODULES = [
  'ssl',
  'socache_shmcb',
  'headers',
  'proxy',
  'proxy_http',
  'proxy_balancer',
  'slotmem_shm',
  'lbmethod_byrequests',
  'unique_id',
  'alias',
];

const skip = apacheUnavailable(MODULES) || commandUnavailable('openssl', ['version'], 'openssl');

/**
 * deploy/apache/aa-oidc.conf as the test runs it: the same file with the virtual hosts' addresses,
 * the certificate, the log folder, the server name and the instance's address replaced (each
 * replacement must find its text, so the test notices when the file changes shape). One instance:
 * the second balancer member is dropped, as docs/deployment.md says for a single instance.
 */
export function apacheSiteFromDeployFile(
  deployFile: string,
  values: {
    httpsPort: number;
    httpPort: number;
    instancePort: number;
    cert: string;
    key: string;
    logDirectory: string;
  },
): string {
  return adaptDeployFile(deployFile, 'deploy/apache/aa-oidc.conf', [
    ['<VirtualHost *:80>', `<VirtualHost 127.0.0.1:${values.httpPort}>`],
    ['<VirtualHost *:443>', `<VirtualHost 127.0.0.1:${values.httpsPort}>`],
    [/SSLCertificateFile\s+\S+/, `SSLCertificateFile ${values.cert}`],
    [/SSLCertificateKeyFile\s+\S+/, `SSLCertificateKeyFile ${values.key}`],
    ['BalancerMember "http://127.0.0.1:8000"', `BalancerMember "http://127.0.0.1:${values.instancePort}"`],
    [/^\s*BalancerMember "http:\/\/127\.0\.0\.1:8001".*\n/m, ''],
    [/ServerName auth\.example\.org/g, 'ServerName 127.0.0.1'],
    [
      'Redirect permanent / https://auth.example.org/',
      `Redirect permanent / https://127.0.0.1:${values.httpsPort}/`,
    ],
    [/\$\{APACHE_LOG_DIR\}/g, values.logDirectory],
  ]);
}

/** An HTTPS request through Apache from a chosen loopback address, with the headers a client chose. */
function requestFrom(
  localAddress: string,
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { headers, localAddress, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
  });
}

/** The access line aa-oidc wrote for the request with this id (its JSON log on stdout). */
function accessLine(
  output: string,
  requestId: string,
): { req: { remoteAddress?: string; url: string } } | undefined {
  for (const line of output.split('\n')) {
    if (!line.includes(requestId)) continue;
    const parsed = JSON.parse(line) as {
      msg?: string;
      requestId?: string;
      req?: { remoteAddress?: string; url: string };
    };
    if (parsed.msg === 'request completed' && parsed.requestId === requestId && parsed.req)
      return { req: parsed.req };
  }
  return undefined;
}

describe(`deploy/apache: Apache in front of a production instance (${testDatabaseKind})`, { skip }, () => {
  let database: TestDatabase;
  let services: Services | undefined;
  let apache: RunningApache | undefined;
  let instance: Child | undefined;
  let instancePort: number;
  let httpPort: number;
  let accessLog: string;
  let edge: Endpoint;
  let client: Client;
  let username: string;
  const metricsToken = randomBytes(16).toString('hex');

  before(async () => {
    database = await createTestDatabase();
    const folder = database.dataDir;
    accessLog = path.join(folder, 'aa-oidc.access.log');
    // The certificate Apache presents for 127.0.0.1, trusted by this process.
    const { certFile, keyFile } = loopbackCertificate(folder);
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), readFileSync(certFile, 'utf8')]);

    // Apache first: the issuer names its HTTPS port. The instance listens on the port the site
    // names before any request reaches Apache.
    const deployFile = readFileSync(DEPLOY_CONF, 'utf8');
    let httpsPort = 0;
    apache = await startOnFreePort(async (port) => {
      httpPort = port;
      httpsPort = await freePort();
      instancePort = await freePort();
      const site = apacheSiteFromDeployFile(deployFile, {
        httpPort,
        httpsPort,
        instancePort,
        cert: certFile,
        key: keyFile,
        logDirectory: folder,
      });
      // What Debian's ports.conf and ssl.conf add around a site: the HTTPS port, a TLS session cache.
      const around = [
        `Listen 127.0.0.1:${httpsPort}`,
        `SSLSessionCache shmcb:${path.join(folder, 'ssl_scache')}(512000)`,
      ];
      return startApache(httpPort, MODULES, [...around, site].join('\n'), { 'htdocs/index.html': '' });
    });
    edge = { origin: `https://127.0.0.1:${httpsPort}`, issuer: `https://127.0.0.1:${httpsPort}/o` };

    const env = testEnv(database, {
      NODE_ENV: 'production',
      AA_OIDC_ISSUER: edge.issuer,
      AA_OIDC_SECRET_KEY: randomBytes(32).toString('base64url'),
      AA_OIDC_HOST: '127.0.0.1',
      AA_OIDC_PORT: String(instancePort),
      AA_OIDC_TRUST_PROXY: 'true',
      // Apache connects from 127.0.0.1; any other loopback address is a client of its own.
      AA_OIDC_TRUSTED_PROXIES: '127.0.0.1/32',
      // /metrics on the main port too, so that only Apache stands between it and a client.
      AA_OIDC_METRICS_BEARER_TOKEN: metricsToken,
      AA_OIDC_LOG_LEVEL: 'info',
    });
    const migrated = await spawnCli(['migrate'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    services = await createServices(loadConfig({ env: { ...env, AA_OIDC_LOG_LEVEL: 'warn' } }));
    username = `pilot${randomBytes(3).toString('hex')}`;
    await services.directoryAdmin.createUser({ username, password: PASSWORD, oidcAccess: true });
    const created = await services.applications.create(
      { name: 'Wiki', redirectUris: [REDIRECT_URI], skipAuthorization: true },
      'test',
    );
    client = { clientId: created.application.clientId, clientSecret: created.clientSecret! };
    instance = startCliProcess(['serve'], env);
    await instance.waitFor(/aa-oidc production server on/, 'the listening line');
  });

  after(async () => {
    if (apache) {
      const log = await apache.errorLog();
      if (/\[(crit|emerg|alert)\]/.test(log)) console.log(`Apache error log:\n${log}`);
    }
    await Promise.allSettled([instance?.stop('SIGKILL'), apache?.stop()]);
    await services?.close();
    await database?.drop();
  });

  it('serves discovery with the public https issuer, and redirects plain HTTP there', async () => {
    const discovery = await fetch(`${edge.issuer}/.well-known/openid-configuration`);
    assert.equal(discovery.status, 200);
    const metadata = (await discovery.json()) as { issuer: string; token_endpoint: string };
    assert.equal(metadata.issuer, edge.issuer);
    assert.equal(metadata.token_endpoint, `${edge.issuer}/token/`);
    assert.equal(discovery.headers.get('strict-transport-security'), 'max-age=31536000');

    const plain = await fetch(`http://127.0.0.1:${httpPort}/o/.well-known/openid-configuration`, {
      redirect: 'manual',
    });
    assert.equal(plain.status, 301);
    assert.equal(plain.headers.get('location'), `${edge.issuer}/.well-known/openid-configuration`);
  });

  it('signs a user in through Apache: code, tokens and userinfo', async () => {
    const tokens = await login(edge, client, username);
    const info = await userinfo(edge, tokens.accessToken);
    assert.equal(info.status, 200, info.body);
    assert.equal((JSON.parse(info.body) as { preferred_username?: string }).preferred_username, username);
  });

  it('hands a long state back to the application after sign-in', async () => {
    // 7,000 characters: as long as fits Apache's request line (LimitRequestLine, 8 KiB).
    const state = randomBytes(3500).toString('hex');
    const { response, verifier } = await authorize(edge, new Browser(), client, username, { state });
    assert.equal(response.status, 303, `the redirect to the application, not ${response.status}`);
    assert.equal(new URL(response.headers.get('location')!).searchParams.get('state'), state);
    const body = await exchangeCode(edge, client, response, verifier);
    assert.ok(body.access_token);
  });

  it('tells aa-oidc the real client address, scheme and host, whatever the client claims', async () => {
    // A client on 127.0.0.7 that claims another address, plain HTTP and another host: Apache
    // replaces all three (appended, the claimed host and scheme would come first and be refused).
    const answer = await requestFrom('127.0.0.7', `${edge.issuer}/.well-known/openid-configuration`, {
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil.invalid',
      'x-request-id': 'chosen-by-the-client',
    });
    assert.equal(answer.status, 200, answer.body);
    const requestId = String(answer.headers['x-request-id']);
    assert.notEqual(requestId, 'chosen-by-the-client', 'Apache gives each request its own id');
    await waitUntil(
      () => accessLine(instance!.stdout(), requestId) !== undefined,
      'aa-oidc logs the request',
    );
    assert.equal(accessLine(instance!.stdout(), requestId)!.req.remoteAddress, '127.0.0.7');
    // Apache's own line carries the same id, and the path without its query string.
    await waitUntil(
      async () => (await readFile(accessLog, 'utf8').catch(() => '')).includes(requestId),
      'Apache logs the request',
    );
  });

  it('keeps query strings out of its access log', async () => {
    const marker = 'eyJhbGciOiJSUzI1NiJ9.query-string-marker.c2ln';
    const response = await fetch(`${edge.issuer}/logout/?id_token_hint=${marker}`, {
      headers: { referer: `https://app.example.org/callback?code=${marker}` },
    });
    await response.arrayBuffer();
    const requestId = response.headers.get('x-request-id')!;
    await waitUntil(
      async () => (await readFile(accessLog, 'utf8').catch(() => '')).includes(requestId),
      'Apache logs the request',
    );
    const logged = await readFile(accessLog, 'utf8');
    assert.doesNotMatch(logged, /query-string-marker/, logged);
    assert.match(logged, new RegExp(`"GET /o/logout/ HTTP/1.1" \\d{3} \\d+ "[^"]*" ${requestId}`), logged);
  });

  it('refuses /metrics, which the instance itself serves with its bearer token', async () => {
    const authorization = `Bearer ${metricsToken}`;
    const direct = await fetch(`http://127.0.0.1:${instancePort}/metrics`, { headers: { authorization } });
    assert.equal(direct.status, 200, 'the instance serves /metrics on its own port');
    await direct.arrayBuffer();
    for (const pathname of ['/metrics', '/metrics/', '/%6detrics', '//metrics']) {
      const through = await fetch(`${edge.origin}${pathname}`, { headers: { authorization } });
      const body = await through.text();
      assert.equal(through.status, 403, `${pathname}: ${body}`);
      assert.doesNotMatch(body, /aa_oidc_/);
    }
  });
});
