import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createConnection } from 'mysql2/promise';
import { openAllianceAuthDatabase } from '../../src/alliance-auth/database.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { openDatabase } from '../../src/db/connect.ts';
import { AA_LOGIN_URL, allianceAuthUnavailable } from '../helpers/alliance-auth.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const cwd = temporaryFolders('aa-oidc-url-passwords-');

/**
 * A password as an operator pastes it into a URL: spaces and a `%` that starts no escape left as
 * they are, a `/` percent-encoded as the URL form requires.
 */
const WRITTEN = 'my secret 50%off%2Fnow';
const MEANT = 'my secret 50%off/now';

/**
 * A PostgreSQL server's first steps on loopback: it asks for the password in clear text, keeps the
 * one it is sent and refuses it (28P01), as a server with another password would.
 */
async function startPasswordRecorder(): Promise<{
  port: number;
  received: string[];
  close(): Promise<void>;
}> {
  const received: string[] = [];
  const server = net.createServer((socket) => {
    let buffered = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!started && buffered.length >= 4 && buffered.length >= buffered.readInt32BE(0)) {
        started = true;
        buffered = buffered.subarray(buffered.readInt32BE(0));
        socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
      }
      if (started && buffered.length >= 5 && buffered.length >= 1 + buffered.readInt32BE(1)) {
        received.push(buffered.subarray(5, buffered.readInt32BE(1)).toString('utf8'));
        const fields = Buffer.from('SFATAL\0C28P01\0Mpassword authentication failed\0\0');
        const header = Buffer.alloc(5);
        header.write('E');
        header.writeInt32BE(4 + fields.length, 1);
        socket.end(Buffer.concat([header, fields]));
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('a database URL whose password holds spaces and a lone %', () => {
  it('sends PostgreSQL the password as it was written (AA_OIDC_DATABASE_URL)', async () => {
    const recorder = await startPasswordRecorder();
    try {
      const config = loadConfig({
        env: { AA_OIDC_DATABASE_URL: `postgres://aa:${WRITTEN}@127.0.0.1:${recorder.port}/aa_oidc` },
        cwd: cwd(),
      });
      const handle = openDatabase(config.database);
      try {
        await assert.rejects(sql`select 1`.execute(handle.db), /password authentication failed/);
      } finally {
        await handle.close();
      }
      assert.deepEqual(recorder.received, [MEANT]);
    } finally {
      await recorder.close();
    }
  });

  it("sends Alliance Auth's PostgreSQL the password as it was written (AA_OIDC_AA_DATABASE_URL)", async () => {
    const recorder = await startPasswordRecorder();
    try {
      const config = loadConfig({
        env: {
          AA_OIDC_DIRECTORY: 'alliance-auth',
          AA_OIDC_AA_DATABASE_URL: `postgres://aa:${WRITTEN}@127.0.0.1:${recorder.port}/alliance_auth`,
          AA_OIDC_AA_LOGIN_URL: AA_LOGIN_URL,
        },
        cwd: cwd(),
      });
      const connection = openAllianceAuthDatabase(config.directory.allianceAuth.databaseUrl!);
      try {
        await assert.rejects(sql`select 1`.execute(connection.db), /password authentication failed/);
      } finally {
        await connection.close();
      }
      assert.deepEqual(recorder.received, [MEANT]);
    } finally {
      await recorder.close();
    }
  });
});

describe('a database URL holding a tab or a line break', () => {
  it('is refused, naming the setting, never the password, and saying how to write it', () => {
    for (const [env, setting] of [
      [{ AA_OIDC_DATABASE_URL: 'postgres://aa:hunter2\tx@127.0.0.1:5432/aa_oidc' }, 'AA_OIDC_DATABASE_URL'],
      [
        {
          AA_OIDC_DIRECTORY: 'alliance-auth',
          AA_OIDC_AA_DATABASE_URL: 'mysql://aa:hunter2\nx@127.0.0.1:3306/alliance_auth',
          AA_OIDC_AA_LOGIN_URL: AA_LOGIN_URL,
        },
        'AA_OIDC_AA_DATABASE_URL',
      ],
    ] as const) {
      assert.throws(
        () => loadConfig({ env, cwd: cwd() }),
        (error) =>
          error instanceof ConfigError &&
          error.message.startsWith(`${setting}: "`) &&
          error.message.endsWith(
            '" holds a tab, a line break or another control character; remove it, or percent-encode it if the password holds it (like %09 for a tab)',
          ) &&
          !error.message.includes('hunter2'),
      );
    }
  });

  it('is read without the spaces and line breaks around it', () => {
    const config = loadConfig({
      env: { AA_OIDC_DATABASE_URL: ' postgres://aa:hunter2@127.0.0.1:5432/aa_oidc \n' },
      cwd: cwd(),
    });
    assert.deepEqual(config.database, {
      kind: 'postgres',
      url: 'postgres://aa:hunter2@127.0.0.1:5432/aa_oidc',
    });
  });
});

const MARIADB_URL = process.env.AA_OIDC_TEST_MARIADB_URL ?? 'mysql://root@127.0.0.1:3306/';

describe(
  "Alliance Auth's MariaDB with a login whose password holds spaces and a lone %",
  { skip: await allianceAuthUnavailable('mysql') },
  () => {
    const login = `aa_url_pw_${randomBytes(5).toString('hex')}`;
    before(async () => {
      const admin = await createConnection({ uri: MARIADB_URL });
      try {
        await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [login, '%', MEANT]);
      } finally {
        await admin.end();
      }
    });
    after(async () => {
      const admin = await createConnection({ uri: MARIADB_URL });
      try {
        await admin.query('DROP USER IF EXISTS ?@?', [login, '%']);
      } finally {
        await admin.end();
      }
    });

    it('signs in with the password as it was written (AA_OIDC_AA_DATABASE_URL)', async () => {
      const server = new URL(MARIADB_URL);
      const config = loadConfig({
        env: {
          AA_OIDC_DIRECTORY: 'alliance-auth',
          AA_OIDC_AA_DATABASE_URL: `mysql://${login}:${WRITTEN}@${server.host}/`,
          AA_OIDC_AA_LOGIN_URL: AA_LOGIN_URL,
        },
        cwd: cwd(),
      });
      const connection = openAllianceAuthDatabase(config.directory.allianceAuth.databaseUrl!);
      try {
        const { rows } = await sql<{ login: string }>`select current_user() as login`.execute(connection.db);
        assert.match(rows[0]!.login, new RegExp(`^${login}@`));
      } finally {
        await connection.close();
      }
    });
  },
);
