import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import {
  allianceAuthDirectory,
  allianceAuthEnv,
  allianceAuthUnavailable,
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { READINESS_REUSE_MS } from '../../src/http/health.ts';
import { clientCertificate, loopbackCertificate } from '../helpers/certificate.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { commandUnavailable } from '../helpers/e2e.ts';
import { openLoginPage, submitLogin } from '../helpers/flows.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import {
  type MariaDbServer,
  mariadbServerUnavailable,
  startMariadbServer,
} from '../helpers/mariadb-server.ts';
import { seedApp, startServer, type TestServer } from '../helpers/server.ts';

const skip =
  mariadbServerUnavailable() ||
  commandUnavailable('openssl', ['version'], 'openssl') ||
  (await allianceAuthUnavailable('mysql'));

// Both suites' conditions are settled before either runs: the MariaDB suite blocks the event loop
// for a moment (openssl, mariadb-install-db), which would time out a probe still connecting.
const postgresSkip = (await allianceAuthUnavailable('postgres')) || (await postgresWithoutTls());

/** The reason to skip when the test PostgreSQL server accepts TLS (the case needs one that does not). */
async function postgresWithoutTls(): Promise<string | false> {
  const fixture = await createAllianceAuthDatabase('postgres');
  try {
    const { rows } = await sql<{ ssl: string }>`show ssl`.execute(fixture.owner);
    return rows[0]?.ssl === 'off'
      ? false
      : 'the test PostgreSQL server accepts TLS (ssl = on); the case needs one that does not';
  } finally {
    await fixture.drop();
  }
}

/**
 * Alliance Auth's MariaDB over TLS, as an operator whose AA database is on another host sets it up:
 * a MariaDB server of the test's own presents a certificate made by the test, and aa-oidc's login is
 * created `REQUIRE SSL`, so the server refuses it anything but TLS. The URL takes the `mysql` client's
 * option names: `ssl-mode` and `ssl-ca`.
 */
describe("Alliance Auth's MariaDB over TLS", { skip }, () => {
  let folder: string;
  let mariadb: MariaDbServer;
  let fixture: AllianceAuthTestDatabase;
  let database: TestDatabase;
  /** The certificate the server presents, naming localhost and 127.0.0.1: its own authority. */
  let named: { certFile: string; keyFile: string };
  /** Another self-signed certificate, naming only 127.0.0.1. */
  let addressOnly: { certFile: string; keyFile: string };
  /** A client certificate for the login created REQUIRE X509, and the authority the server checks it by. */
  let client: { caFile: string; certFile: string; keyFile: string };
  /** The reader's URL at `host`, with these parameters (`user` instead: a login of the same grants). */
  let readerAt: (host: string, parameters?: Record<string, string>, user?: string) => string;

  before(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-mariadb-tls-'));
    named = loopbackCertificate(folder, 'named-', 'DNS:localhost,IP:127.0.0.1');
    addressOnly = loopbackCertificate(folder, 'address-');
    client = clientCertificate(folder, 'aa_oidc');
    mariadb = await startMariadbServer(folder, { ...named, clientCaFile: client.caFile });
    fixture = await createAllianceAuthDatabase('mysql', { mariadbUrl: mariadb.rootUrl });
    const reader = new URL(fixture.readerUrl);
    await fixture.run(`ALTER USER '${decodeURIComponent(reader.username)}'@'%' REQUIRE SSL`);
    await fixture.run(`CREATE USER 'x509_${reader.username}'@'%' REQUIRE X509`);
    await fixture.run(`GRANT SELECT, SHOW VIEW ON \`${fixture.name}\`.* TO 'x509_${reader.username}'@'%'`);
    readerAt = (host, parameters = {}, user) => {
      const url = new URL(fixture.readerUrl);
      if (user !== undefined) {
        url.username = user;
        url.password = '';
      }
      url.hostname = host;
      url.port = String(mariadb.port);
      for (const [name, value] of Object.entries(parameters)) url.searchParams.set(name, value);
      return url.href;
    };
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => {
    await fixture?.drop().catch(() => undefined);
    await mariadb?.stop();
    await database?.drop();
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  /** `aa-oidc user list` with Alliance Auth's database at `url`. */
  const listUsers = (url: string) => cli(['user', 'list'], testEnv(database, allianceAuthEnv(url)));

  describe('serving, with ssl-mode=VERIFY_IDENTITY and the authority of the server’s certificate', () => {
    let server: TestServer;
    let clientId: string;
    const harness = createLeakHarness();

    before(async () => {
      server = await startServer(
        {
          directory: allianceAuthDirectory(
            readerAt('localhost', { 'ssl-mode': 'VERIFY_IDENTITY', 'ssl-ca': named.certFile }),
            { passwordLogin: true, pollSeconds: 3600 },
          ),
        },
        { database, harness },
      );
      clientId = (await seedApp(server, { name: 'Wiki' })).clientId;
      harness.registerSecret(new URL(fixture.readerUrl).password, "the AA reader's password");
      harness.registerSecret(FIXTURE_PASSWORD, "alice's password");
    });
    after(async () => {
      await server?.close();
    });

    it('signs in with an Alliance Auth password, read over TLS', async () => {
      const page = await openLoginPage(server, clientId);
      const signedIn = await submitLogin(page, 'alice', FIXTURE_PASSWORD);
      assert.equal(signedIn.status, 303, signedIn.body);
      const ready = await fetch(`${server.origin}/readyz`);
      assert.equal(ready.status, 200);
    });

    it('answers 503 "try again" while the server presents a certificate it does not trust, and serves once it does', async () => {
      await mariadb.restart({ ...addressOnly, clientCaFile: client.caFile });
      const page = await openLoginPage(server, clientId);
      const refused = await submitLogin(page, 'alice', FIXTURE_PASSWORD);
      assert.equal(refused.status, 503, 'a try-again page, not a server error');
      assert.match(refused.body, /Try again/i);
      // An answer of /readyz is reused for READINESS_REUSE_MS: the refusal shows once that has passed.
      await delay(READINESS_REUSE_MS + 50);
      const ready = await fetch(`${server.origin}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { allianceAuth?: string }).allianceAuth, 'unreachable');
      assert.ok(
        harness.logLines.some((line) => line.includes('self-signed certificate')),
        'the log says why',
      );

      // Meanwhile, a command told to trust that certificate, by a name it does not carry, says so.
      const otherName = await listUsers(
        readerAt('localhost', { 'ssl-mode': 'VERIFY_IDENTITY', 'ssl-ca': addressOnly.certFile }),
      );
      assert.equal(otherName.code, 1);
      assert.match(
        otherName.stderr,
        /cannot connect to Alliance Auth's database at .* \(AA_OIDC_AA_DATABASE_URL\): the server's TLS certificate is not issued for localhost \(Hostname\/IP does not match certificate's altnames.*\); connect with a host name the certificate names\n$/,
      );

      await mariadb.restart({ ...named, clientCaFile: client.caFile });
      const again = await openLoginPage(server, clientId);
      const served = await submitLogin(again, 'alice', FIXTURE_PASSWORD);
      assert.equal(served.status, 303, served.body);
      await harness.assertNoLeaks();
    });
  });

  it('checks the authority without the name with ssl-mode=VERIFY_CA, which an address needs', async () => {
    const result = await listUsers(
      readerAt('127.0.0.1', { 'ssl-mode': 'VERIFY_CA', 'ssl-ca': named.certFile }),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /alice/);
    const byAddress = await listUsers(
      readerAt('127.0.0.1', { 'ssl-mode': 'VERIFY_IDENTITY', 'ssl-ca': named.certFile }),
    );
    assert.equal(byAddress.code, 1);
    assert.match(
      byAddress.stderr,
      /AA_OIDC_AA_DATABASE_URL: ssl-mode=VERIFY_IDENTITY needs the host name the server's certificate names, not the address 127\.0\.0\.1; connect by that name, or use ssl-mode=VERIFY_CA/,
    );
  });

  it('says what to change when the certificate is not trusted, or TLS is missing', async () => {
    const untrusted = await listUsers(readerAt('localhost', { 'ssl-mode': 'VERIFY_IDENTITY' }));
    assert.equal(untrusted.code, 1);
    assert.match(
      untrusted.stderr,
      /\(AA_OIDC_AA_DATABASE_URL\): the server's TLS certificate is not trusted \(self-signed certificate.*\); give the certificate of its authority in AA_OIDC_AA_DATABASE_URL \(ssl-ca=\/path\/to\/ca\.pem\)\n$/,
    );
    const plain = await listUsers(readerAt('localhost'));
    assert.equal(plain.code, 1);
    assert.match(
      plain.stderr,
      /: the server refused the user \(Access denied for user .*\); check the user and password in AA_OIDC_AA_DATABASE_URL and the user's grants\. A server or user that requires TLS \(require_secure_transport, REQUIRE SSL\) refuses this way: add ssl-mode=VERIFY_IDENTITY&ssl-ca=\/path\/to\/ca\.pem\n$/,
    );
    assert.doesNotMatch(plain.stderr + untrusted.stderr, new RegExp(new URL(fixture.readerUrl).password));
  });

  it('explains a refused certificate to `import plugin-apps` with the built-in directory too', async () => {
    const result = await cli(
      ['import', 'plugin-apps', '--dry-run'],
      testEnv(database, {
        AA_OIDC_AA_DATABASE_URL: readerAt('localhost', { 'ssl-mode': 'VERIFY_IDENTITY' }),
      }),
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /cannot connect to Alliance Auth's database at .* \(AA_OIDC_AA_DATABASE_URL\): the server's TLS certificate is not trusted \(self-signed certificate.*\); give the certificate of its authority/,
    );
    assert.doesNotMatch(result.stderr, /is allianceauth-oidc-provider installed there/);
  });

  it('presents a client certificate with ssl-cert and ssl-key, for a login created REQUIRE X509', async () => {
    const user = `x509_${new URL(fixture.readerUrl).username}`;
    const withCertificate = await listUsers(
      readerAt(
        'localhost',
        { 'ssl-ca': named.certFile, 'ssl-cert': client.certFile, 'ssl-key': client.keyFile },
        user,
      ),
    );
    assert.equal(withCertificate.code, 0, withCertificate.stderr);
    assert.match(withCertificate.stdout, /alice/);
    const without = await listUsers(readerAt('localhost', { 'ssl-ca': named.certFile }, user));
    assert.equal(without.code, 1);
    assert.match(
      without.stderr,
      /: the server refused the user \(Access denied for user .*\); check the user and password in AA_OIDC_AA_DATABASE_URL and the user's grants\. A user created REQUIRE X509 refuses this way without a client certificate: add ssl-cert and ssl-key\n$/,
    );
  });

  it('encrypts without checking the certificate with ssl-mode=REQUIRED, and warns that it does not check', async () => {
    const result = await listUsers(readerAt('127.0.0.1', { 'ssl-mode': 'required' }));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /alice/);
    assert.match(
      result.stdout + result.stderr,
      /ssl-mode=REQUIRED: the connection is encrypted, but the server's certificate is not checked/,
    );
  });

  it('refuses TLS settings that cannot work, naming the parameter', async () => {
    const unusable = await listUsers(
      readerAt('localhost', { 'ssl-mode': 'REQUIRED', 'ssl-ca': named.certFile }),
    );
    assert.equal(unusable.code, 1);
    assert.match(
      unusable.stderr,
      /AA_OIDC_AA_DATABASE_URL: ssl-ca is used only to check the server's certificate, which ssl-mode=REQUIRED does not do/,
    );
    // A mode the mysql client does not know: refused with the configuration, before anything connects.
    const unknownMode = await listUsers(readerAt('localhost', { 'ssl-mode': 'SOMETIMES' }));
    assert.equal(unknownMode.code, 2);
    assert.match(
      unknownMode.stderr,
      /configuration error: AA_OIDC_AA_DATABASE_URL: ssl-mode "SOMETIMES" is not one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY\n$/,
    );
    // A file that cannot be read: refused with the configuration, before anything connects.
    const missing = await listUsers(readerAt('localhost', { 'ssl-ca': path.join(folder, 'missing.pem') }));
    assert.equal(missing.code, 2);
    assert.match(
      missing.stderr,
      /configuration error: AA_OIDC_AA_DATABASE_URL: cannot read \S+missing\.pem \(ssl-ca\): no such file; name a PEM file holding the certificate of the authority/,
    );
  });

  // Last: the server comes back without TLS.
  it('says so when the URL asks for TLS and the server does not offer it', async () => {
    await mariadb.restart();
    const result = await listUsers(
      readerAt('localhost', { 'ssl-mode': 'VERIFY_IDENTITY', 'ssl-ca': named.certFile }),
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /\(AA_OIDC_AA_DATABASE_URL\): the server does not accept TLS connections; enable TLS on the server \(ssl_cert, ssl_key\), or remove ssl-mode and ssl-ca from AA_OIDC_AA_DATABASE_URL\n$/,
    );
  });
});

describe("Alliance Auth's PostgreSQL over TLS", { skip: postgresSkip }, () => {
  it('says so when the URL asks for TLS and the server does not offer it', async () => {
    const fixture = await createAllianceAuthDatabase('postgres');
    const database = await createTestDatabase({ migrated: true });
    try {
      const url = new URL(fixture.readerUrl);
      url.searchParams.set('sslmode', 'verify-full');
      const result = await cli(['user', 'list'], testEnv(database, allianceAuthEnv(url.href)));
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /cannot connect to Alliance Auth's database at .* \(AA_OIDC_AA_DATABASE_URL\): the server does not accept TLS connections; enable ssl on the server, or remove sslmode from AA_OIDC_AA_DATABASE_URL\n$/,
      );
    } finally {
      await database.drop();
      await fixture.drop();
    }
  });
});
