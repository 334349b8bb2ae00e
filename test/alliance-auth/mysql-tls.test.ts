import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  explainMysqlConnectError,
  mysqlSslOption,
  mysqlUrlParts,
} from '../../src/alliance-auth/mysql-tls.ts';

describe("MariaDB's TLS settings in Alliance Auth's database URL", () => {
  const base = 'mysql://aa_oidc:secret@db.example.org:3306/alliance_auth';

  it('leaves a URL without TLS parameters as it is', () => {
    assert.deepEqual(mysqlUrlParts(`${base}?charset=utf8mb4`), {
      uri: `${base}?charset=utf8mb4`,
      tls: undefined,
    });
  });

  it('takes ssl-mode and ssl-ca (or ssl_mode and ssl_ca) out of the URL the driver sees', () => {
    assert.deepEqual(mysqlUrlParts(`${base}?ssl-mode=verify_ca&ssl-ca=/etc/ca.pem&charset=utf8mb4`), {
      uri: `${base}?charset=utf8mb4`,
      tls: { mode: 'VERIFY_CA', caFile: '/etc/ca.pem' },
    });
    assert.deepEqual(mysqlUrlParts(`${base}?ssl_mode=REQUIRED`).tls, { mode: 'REQUIRED', caFile: undefined });
  });

  it('reads ssl-ca alone as VERIFY_IDENTITY', () => {
    assert.deepEqual(mysqlUrlParts(`${base}?ssl-ca=/etc/ca.pem`).tls, {
      mode: 'VERIFY_IDENTITY',
      caFile: '/etc/ca.pem',
    });
  });

  it('refuses what cannot work, saying what would', () => {
    const refusals: Array<[string, RegExp]> = [
      [
        '?ssl-mode=PREFERRED',
        /ssl-mode "PREFERRED" is not one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY/,
      ],
      ['?ssl-ca=', /ssl-ca is empty/],
      [
        '?ssl-mode=DISABLED&ssl-ca=/etc/ca.pem',
        /which ssl-mode=DISABLED does not do; use ssl-mode=VERIFY_IDENTITY/,
      ],
      [
        '?ssl-mode=VERIFY_CA&ssl={"rejectUnauthorized":false}',
        /either as ssl-mode and ssl-ca or as the driver’s ssl=/,
      ],
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
      tls: { mode: 'DISABLED', caFile: undefined },
    });
  });

  it('gives the driver what each mode checks', () => {
    assert.equal(mysqlSslOption({ mode: 'DISABLED', caFile: undefined }, undefined), undefined);
    assert.deepEqual(mysqlSslOption({ mode: 'REQUIRED', caFile: undefined }, undefined), {
      rejectUnauthorized: false,
    });
    assert.deepEqual(mysqlSslOption({ mode: 'VERIFY_CA', caFile: 'f' }, 'PEM'), {
      ca: 'PEM',
      rejectUnauthorized: true,
      verifyIdentity: false,
    });
    assert.deepEqual(mysqlSslOption({ mode: 'VERIFY_IDENTITY', caFile: undefined }, undefined), {
      rejectUnauthorized: true,
      verifyIdentity: true,
    });
  });

  it('explains an expired certificate and an unknown TLS failure', () => {
    const explain = (message: string) =>
      explainMysqlConnectError({ code: 'HANDSHAKE_SSL_ERROR', message }, base, {
        setting: 'AA_OIDC_AA_DATABASE_URL',
        tls: { mode: 'VERIFY_IDENTITY', caFile: undefined },
      });
    assert.equal(
      explain('certificate has expired'),
      "the server's TLS certificate is not valid now (certificate has expired); renew it on the server",
    );
    assert.equal(explain('wrong version number'), 'the TLS handshake failed (wrong version number)');
  });
});
