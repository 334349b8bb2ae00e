import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openAllianceAuthDatabase } from '../../src/alliance-auth/database.ts';
import { loadConfig } from '../../src/config/load.ts';
import {
  explainMysqlConnectError,
  type MysqlSslMode,
  mysqlSslOption,
  type MysqlTlsSettings,
  mysqlUrlParts,
} from '../../src/alliance-auth/mysql-tls.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const tempDir = temporaryFolders('aa-oidc-mysql-tls-');

describe("MariaDB's TLS settings in Alliance Auth's database URL", () => {
  const base = 'mysql://aa_oidc:secret@db.example.org:3306/alliance_auth';

  it('leaves a URL without TLS parameters as it is', () => {
    assert.deepEqual(mysqlUrlParts(`${base}?charset=utf8mb4`), {
      uri: `${base}?charset=utf8mb4`,
      tls: undefined,
    });
  });

  it('takes ssl-mode, ssl-ca, ssl-cert and ssl-key (or ssl_mode …) out of the URL the driver sees', () => {
    assert.deepEqual(mysqlUrlParts(`${base}?ssl-mode=verify_ca&ssl-ca=/etc/ca.pem&charset=utf8mb4`), {
      uri: `${base}?charset=utf8mb4`,
      tls: { mode: 'VERIFY_CA', caFile: '/etc/ca.pem', client: undefined },
    });
    assert.deepEqual(mysqlUrlParts(`${base}?ssl_mode=REQUIRED&ssl_cert=/etc/c.pem&ssl_key=/etc/k.pem`), {
      uri: base,
      tls: { mode: 'REQUIRED', caFile: undefined, client: { certFile: '/etc/c.pem', keyFile: '/etc/k.pem' } },
    });
  });

  it('reads TLS parameters without ssl-mode as VERIFY_IDENTITY', () => {
    assert.deepEqual(mysqlUrlParts(`${base}?ssl-ca=/etc/ca.pem`).tls, {
      mode: 'VERIFY_IDENTITY',
      caFile: '/etc/ca.pem',
      client: undefined,
    });
    assert.equal(
      mysqlUrlParts(`${base}?ssl-cert=/etc/c.pem&ssl-key=/etc/k.pem`).tls?.mode,
      'VERIFY_IDENTITY',
    );
  });

  it('refuses what cannot work, saying what would', () => {
    const refusals: Array<[string, RegExp]> = [
      [
        '?ssl-mode=PREFERRED',
        /ssl-mode "PREFERRED" is not one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY/,
      ],
      ['?ssl-ca=', /ssl-ca is empty/],
      ['?ssl-cert=/etc/c.pem', /a client certificate needs both ssl-cert \(the certificate\) and ssl-key/],
      ['?ssl-mode=DISABLED&ssl-cert=/etc/c.pem&ssl-key=/etc/k.pem', /ssl-cert and ssl-key need TLS/],
      [
        '?ssl-mode=DISABLED&ssl-ca=/etc/ca.pem',
        /which ssl-mode=DISABLED does not do; use ssl-mode=VERIFY_IDENTITY/,
      ],
      [
        '?ssl-mode=VERIFY_CA&ssl={"rejectUnauthorized":false}',
        /either as ssl-mode and ssl-ca or as the driver’s ssl=/,
      ],
      // The driver's own ssl it would refuse only at the first connection ("Unknown SSL profile").
      ['?ssl=bogus', /ssl "bogus" is not a value the MariaDB\/MySQL driver reads; for TLS use ssl-mode/],
    ];
    for (const [query, message] of refusals)
      assert.throws(() => mysqlUrlParts(`${base}${query}`), message, query);
    assert.throws(
      () => mysqlUrlParts('mysql://aa_oidc@10.0.0.5:3306/alliance_auth?ssl-mode=VERIFY_IDENTITY'),
      /needs the host name the server's certificate names, not the address 10\.0\.0\.5; connect by that name, or use ssl-mode=VERIFY_CA/,
    );
    assert.throws(
      () => mysqlUrlParts('mysql://aa_oidc@[::1]:3306/alliance_auth?ssl-ca=/etc/ca.pem'),
      /not the address ::1/,
    );
  });

  it('with ssl-mode=DISABLED, drops the driver’s own ssl={…} too', () => {
    assert.deepEqual(mysqlUrlParts(`${base}?ssl-mode=DISABLED&ssl={"rejectUnauthorized":false}`), {
      uri: base,
      tls: { mode: 'DISABLED', caFile: undefined, client: undefined },
    });
  });

  it('gives the driver what each mode checks, and the client certificate', () => {
    const settings = (mode: MysqlSslMode): MysqlTlsSettings => ({
      mode,
      caFile: undefined,
      client: undefined,
    });
    assert.equal(mysqlSslOption(settings('DISABLED'), {}), undefined);
    assert.deepEqual(mysqlSslOption(settings('REQUIRED'), { cert: 'C', key: 'K' }), {
      cert: 'C',
      key: 'K',
      rejectUnauthorized: false,
    });
    assert.deepEqual(mysqlSslOption(settings('VERIFY_CA'), { ca: 'PEM' }), {
      ca: 'PEM',
      rejectUnauthorized: true,
      verifyIdentity: false,
    });
    assert.deepEqual(mysqlSslOption(settings('VERIFY_IDENTITY'), {}), {
      rejectUnauthorized: true,
      verifyIdentity: true,
    });
  });

  it('names a TLS file gone since configuration load as the load does: setting, parameter, path, what it holds', () => {
    const folder = tempDir();
    const ca = path.join(folder, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    const url = `mysql://aa_oidc:secret@127.0.0.1:3306/alliance_auth?ssl-mode=VERIFY_CA&ssl-ca=${ca}`;
    const { databaseUrl } = loadConfig({
      env: {
        AA_OIDC_DIRECTORY: 'alliance-auth',
        AA_OIDC_AA_DATABASE_URL: url,
        AA_OIDC_AA_LOGIN_URL: 'http://localhost:8080/',
      },
      cwd: folder,
    }).directory.allianceAuth;
    rmSync(ca);
    // Opening reads the files before anything connects.
    assert.throws(() => openAllianceAuthDatabase(databaseUrl!), {
      name: 'AllianceAuthDatabaseError',
      message: `AA_OIDC_AA_DATABASE_URL: cannot read ${ca} (ssl-ca): no such file; name a PEM file holding the certificate of the authority that issued the server's certificate (a relative path starts from the working directory)`,
    });
  });

  it('explains an expired certificate and an unknown TLS failure', () => {
    const explain = (message: string) =>
      explainMysqlConnectError({ code: 'HANDSHAKE_SSL_ERROR', message }, base, {
        setting: 'AA_OIDC_AA_DATABASE_URL',
        tls: { mode: 'VERIFY_IDENTITY', caFile: undefined, client: undefined },
      });
    assert.equal(
      explain('certificate has expired'),
      "the server's TLS certificate is not valid now (certificate has expired); renew it on the server",
    );
    assert.equal(explain('wrong version number'), 'the TLS handshake failed (wrong version number)');
  });
});
