import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeAllianceAuthServer } from '../../src/alliance-auth/schema-check.ts';
import { whyPostgresTooOld } from '../../src/db/connect.ts';
import { compareVersions, parseServerVersion } from '../../src/db/server-version.ts';

/** What `select version()` answers on real servers, and what aa-oidc reads in it. */
const ANSWERS: ReadonlyArray<[text: string, server: string, numbers: number[]]> = [
  ['8.0.36', 'MySQL', [8, 0, 36]],
  ['5.7.44-log', 'MySQL', [5, 7, 44]],
  ['8.0.36-0ubuntu0.22.04.1', 'MySQL', [8, 0, 36]],
  ['8.4.3-3', 'MySQL', [8, 4, 3]],
  ['10.11.19-MariaDB-0+deb12u1', 'MariaDB', [10, 11, 19]],
  ['11.4.5-MariaDB-ubu2404-log', 'MariaDB', [11, 4, 5]],
  // MariaDB's handshake prefixes its version with 5.5.5- for clients that expect MySQL's form.
  ['5.5.5-10.6.12-MariaDB', 'MariaDB', [10, 6, 12]],
  ['5.5.5-10.3.39-MariaDB-0+deb10u2', 'MariaDB', [10, 3, 39]],
  [
    'PostgreSQL 15.19 (Debian 15.19-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit',
    'PostgreSQL',
    [15, 19],
  ],
  ['PostgreSQL 16beta1 on x86_64-pc-linux-gnu, compiled by gcc, 64-bit', 'PostgreSQL', [16]],
  ['PostgreSQL 12.22 on aarch64-unknown-linux-gnu', 'PostgreSQL', [12, 22]],
  ['PostgreSQL 9.6.24 on x86_64-pc-linux-gnu', 'PostgreSQL', [9, 6, 24]],
];

describe('reading a database server version', () => {
  for (const [text, server, numbers] of ANSWERS) {
    it(`reads "${text}" as ${server} ${numbers.join('.')}`, () => {
      assert.deepEqual(parseServerVersion(text), { server, numbers, text });
    });
  }

  it('reads no version in an answer that names none', () => {
    for (const text of ['', 'CockroachDB CCL v23.1.11', 'MariaDB', 'version 8']) {
      assert.equal(parseServerVersion(text), undefined, text);
    }
  });

  it('compares versions number by number, a missing number counting as 0', () => {
    assert.equal(compareVersions([10, 11, 19], [10, 4]), 1);
    assert.equal(compareVersions([10, 3, 39], [10, 4]), -1);
    assert.equal(compareVersions([8, 0, 0], [8, 0]), 0);
    assert.equal(compareVersions([9, 6, 24], [13]), -1);
    assert.equal(compareVersions([16], [13]), 1);
  });
});

describe("Alliance Auth's database server", () => {
  it('is accepted from MySQL 8.0, MariaDB 10.4 and PostgreSQL 12 on', () => {
    for (const [text, kind] of [
      ['8.0.11', 'mysql'],
      ['8.4.3-3', 'mysql'],
      ['10.4.0-MariaDB', 'mysql'],
      ['10.11.19-MariaDB-0+deb12u1', 'mysql'],
      ['5.5.5-10.6.12-MariaDB', 'mysql'],
      ['PostgreSQL 12.0 on x86_64-pc-linux-gnu', 'postgres'],
      ['PostgreSQL 16beta1 on x86_64-pc-linux-gnu', 'postgres'],
    ] as const) {
      assert.ok('server' in judgeAllianceAuthServer(text, kind), text);
    }
  });

  it('is refused below those, naming the version found and the one needed', () => {
    assert.deepEqual(judgeAllianceAuthServer('5.7.44-log', 'mysql'), {
      error:
        'Alliance Auth\'s database server is MySQL 5.7.44 (version() answered "5.7.44-log"), older than aa-oidc supports: it needs MySQL 8.0 or newer; upgrade the database server first',
    });
    assert.deepEqual(judgeAllianceAuthServer('5.5.5-10.3.39-MariaDB-0+deb10u2', 'mysql'), {
      error:
        'Alliance Auth\'s database server is MariaDB 10.3.39 (version() answered "5.5.5-10.3.39-MariaDB-0+deb10u2"), older than aa-oidc supports: it needs MariaDB 10.4 or newer; upgrade the database server first',
    });
    const postgres = judgeAllianceAuthServer(
      'PostgreSQL 11.22 (Debian 11.22-1) on x86_64-pc-linux-gnu',
      'postgres',
    );
    assert.match(
      'error' in postgres ? postgres.error : '',
      /is PostgreSQL 11\.22 .*it needs PostgreSQL 12 or newer/,
    );
  });

  it('is used with a warning when its answer names no version aa-oidc reads', () => {
    assert.deepEqual(judgeAllianceAuthServer('CockroachDB CCL v23.1.11', 'postgres'), {
      warning:
        'Alliance Auth\'s database server answered version() with "CockroachDB CCL v23.1.11", which aa-oidc does not read as a supported server (PostgreSQL 12 or newer); it is used as it is',
    });
    const other = judgeAllianceAuthServer('PostgreSQL 15.19 on x86_64-pc-linux-gnu', 'mysql');
    assert.match('warning' in other ? other.warning : '', /MySQL 8\.0 or newer, MariaDB 10\.4 or newer/);
  });
});

describe("aa-oidc's own PostgreSQL", () => {
  it('is accepted from 13 on, beta releases too', () => {
    for (const text of [
      'PostgreSQL 13.0 on x86_64-pc-linux-gnu',
      'PostgreSQL 15.19 (Debian 15.19-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc, 64-bit',
      'PostgreSQL 16beta1 on x86_64-pc-linux-gnu',
    ]) {
      assert.equal(whyPostgresTooOld(text), undefined, text);
    }
  });

  it('is refused below 13, naming the version found and the one needed', () => {
    assert.equal(
      whyPostgresTooOld('PostgreSQL 12.22 (Debian 12.22-1.pgdg120+1) on x86_64-pc-linux-gnu'),
      "the server is PostgreSQL 12.22, older than aa-oidc supports: it needs PostgreSQL 13 or newer (its change log and pg-boss's job queue use PostgreSQL 13's functions); upgrade the server first",
    );
    assert.match(
      whyPostgresTooOld('PostgreSQL 9.6.24 on x86_64-pc-linux-gnu') ?? '',
      /PostgreSQL 9\.6\.24, older/,
    );
  });
});
