import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type App, createApp } from '../../src/app.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

/**
 * Sends `head` (a request line and headers, Latin-1: one byte a character) as it is, which fetch
 * would not (it percent-encodes quotes, refuses bytes past 0x7f in headers), and reads the answer.
 */
function rawRequest(origin: string, head: string): Promise<string> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    // Not ended from this side: Node's server aborts a request whose client half-closes.
    socket.write(Buffer.from(`${head}Connection: close\r\n\r\n`, 'latin1'));
  });
}

describe('leak harness', () => {
  describe('catches a secret in every form it checks', () => {
    const secret = 'client-secret-Zq8!x/+ "quoted" é';
    const cases: Array<[string, string]> = [
      ['raw', `value ${secret}`],
      ['JSON-escaped', JSON.stringify({ note: secret })],
      ['URL-encoded', `/cb?x=${encodeURIComponent(secret)}`],
      [
        'URL-encoded, lower-case hex',
        `/cb?x=${encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())}`,
      ],
      ['form-encoded', new URLSearchParams({ x: secret }).toString()],
      ['base64 inside Basic credentials', `Basic ${Buffer.from(`wiki:${secret}`).toString('base64')}`],
      ['base64url at another alignment', Buffer.from(`ab${secret}`).toString('base64url')],
      ['hex', Buffer.from(secret).toString('hex')],
    ];
    for (const [name, text] of cases) {
      it(name, async () => {
        const harness = createLeakHarness();
        harness.registerSecret(secret, 'wiki client secret');
        harness.scanText('test input', text);
        await assert.rejects(harness.assertNoLeaks(), (error: Error) => {
          assert.match(error.message, /wiki client secret/);
          assert.ok(!error.message.includes(secret), 'the failure message must not print the secret');
          return true;
        });
      });
    }

    it('in a log line written through a logger that does not redact (proves it reads the lines)', async () => {
      const harness = createLeakHarness();
      harness.registerSecret('plain-password-123', 'password');
      // `note` is not a credential key, so the logger has no reason to hide it.
      createLogger({ logging: { level: 'info', maskedSecrets: false } }, harness.loggerOptions).info({
        note: 'plain-password-123',
      });
      await assert.rejects(harness.assertNoLeaks(), /password \(raw\) in log line 1/);
    });

    it('a control character written raw into a log line or a watched file, named by place', async () => {
      const harness = createLeakHarness();
      harness.registerSecret('plain-password-123', 'password');
      harness.loggerOptions.destination!.write('{"msg":"fine"}\n{"msg":"red \u009b31m, then \u2028"}\n');
      await assert.rejects(harness.assertNoLeaks(), (error: Error) => {
        assert.match(error.message, /a raw U\+009B at 12 in log line 2/);
        assert.doesNotMatch(error.message, /log line 1/);
        return true;
      });
    });

    it('every hidden character the logger escapes, written raw, and none of them as its escape', async () => {
      // Each one that hidden-characters.ts names: bidirectional marks, embeddings, overrides and
      // isolates, and the invisible ones (a soft hyphen, the Hangul fillers, a zero-width space…).
      for (const char of [
        '\u061c',
        '\u200f',
        '\u202e',
        '\u2067',
        '\u00ad',
        '\u115f',
        '\u3164',
        '\uffa0',
        '\u2060',
        '\ufeff',
        '\u2800',
        '\u034f',
        '\ufff0',
        '\ufff8',
      ]) {
        const code = char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
        const harness = createLeakHarness();
        harness.registerSecret('plain-password-123', 'password');
        harness.loggerOptions.destination!.write(`{"msg":"admin${char}"}\n`);
        await assert.rejects(
          harness.assertNoLeaks(),
          new RegExp(`a raw U\\+${code} at 13 in log line 1`),
          code,
        );
        const escaped = createLeakHarness();
        escaped.registerSecret('plain-password-123', 'password');
        escaped.loggerOptions.destination!.write(
          `${JSON.stringify({ msg: `admin${char}` }).replace(char, `\\u${code.toLowerCase()}`)}\n`,
        );
        await escaped.assertNoLeaks();
      }
    });

    it('a hidden character beyond U+FFFF written raw, named by its code point; a flag passes', async () => {
      const harness = createLeakHarness();
      harness.registerSecret('plain-password-123', 'password');
      harness.loggerOptions.destination!.write(
        '{"msg":"\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}"}\n{"msg":"admin\u{1bca0}"}\n',
      );
      await assert.rejects(harness.assertNoLeaks(), (error: Error) => {
        assert.match(error.message, /a raw U\+1BCA0 at 13 in log line 2/);
        assert.doesNotMatch(error.message, /log line 1/);
        return true;
      });
    });

    it('a variation selector of the supplement written raw but after an ideograph, and plane 14 unassigned', async () => {
      for (const [char, code] of [
        ['\u{e0100}', 'E0100'],
        ['\u{e01ef}', 'E01EF'],
        ['\u{e0080}', 'E0080'],
        ['\u{e0fff}', 'E0FFF'],
      ] as const) {
        const harness = createLeakHarness();
        harness.registerSecret('plain-password-123', 'password');
        // Line 1: 葛 and U+E0100, a registered form of the kanji, drawn as one character.
        harness.loggerOptions.destination!.write(`{"msg":"葛\u{e0100}"}\n{"msg":"admin${char}"}\n`);
        await assert.rejects(
          harness.assertNoLeaks(),
          (error: Error) => {
            assert.match(error.message, new RegExp(`a raw U\\+${code} at 13 in log line 2`));
            assert.doesNotMatch(error.message, /log line 1/);
            return true;
          },
          code,
        );
      }
    });

    it('a masked fragment of a token or code, unless the test runs masks on purpose', async () => {
      const line = '{"audit":{"kind":"token_issued","token_sha256":"ab12","token_masked":"Zm9v…NDU2"}}\n';
      const harness = createLeakHarness();
      harness.registerSecret('plain-password-123', 'password');
      harness.loggerOptions.destination!.write(`{"msg":"fine"}\n${line}`);
      await assert.rejects(
        harness.assertNoLeaks(),
        /a masked fragment of a token or code in log line 2, with masks meant to be off/,
      );
      const codeHarness = createLeakHarness();
      codeHarness.registerSecret('plain-password-123', 'password');
      codeHarness.scanText('ignored: not a line of the log', line);
      codeHarness.loggerOptions.destination!.write('{"audit":{"code_masked":"Zm9v…NDU2"}}\n');
      await assert.rejects(codeHarness.assertNoLeaks(), /masked fragment of a token or code in log line 1,/);
      const meant = createLeakHarness({ maskedFragments: true });
      meant.registerSecret('plain-password-123', 'password');
      meant.loggerOptions.destination!.write(line);
      await meant.assertNoLeaks();
    });

    it('refuses to pass when no secret was registered', async () => {
      await assert.rejects(createLeakHarness().assertNoLeaks(), /register the secrets/);
    });
  });

  describe('an app run with requests, log calls and audit events', () => {
    let database: TestDatabase;
    let server: TestServer;
    let app: App;
    let jsonlPath: string;
    const harness = createLeakHarness();
    before(async () => {
      database = await createTestDatabase({ migrated: true });
      jsonlPath = path.join(database.dataDir, 'audit.jsonl');
      server = await startServer({ audit: { jsonlPath } }, { database, harness });
      app = server.app;
      harness.watchFile(jsonlPath);
    });
    after(async () => {
      await server.close();
      await database.drop();
    });

    it('leaks no password, client secret, token or code into logs, events or the JSON-lines sink', async () => {
      const password = 'Tr0ub4dor&3-horse-battery';
      const clientSecret = 'wiki-client-secret-5u9JrVx3kQ';
      const accessToken = 'opaque-access-token-Yk2pQ8sL1mZ';
      const refreshToken = 'opaque-refresh-token-Hq4wE7rT0yU';
      const code = 'authorization-code-Pz3xC6vB9nM';
      const logoutToken = 'eyJ0eXAiOiJsb2dvdXQrand0In0.eyJzdWIiOiI3In0.c2lnbmF0dXJl';
      for (const [value, label] of [
        [password, 'password'],
        [clientSecret, 'client secret'],
        [accessToken, 'access token'],
        [refreshToken, 'refresh token'],
        [code, 'authorization code'],
        [logoutToken, 'logout token'],
      ] as const) {
        harness.registerSecret(value, label);
      }

      const base = server.origin;
      const basic = Buffer.from(`wiki:${clientSecret}`).toString('base64');
      await (
        await fetch(`${base}/o/token`, {
          method: 'POST',
          headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'authorization_code', code }),
        })
      ).arrayBuffer();
      await (await fetch(`${base}/o/userinfo?access_token=${accessToken}`)).arrayBuffer();
      // The same parameter with its name percent-encoded: the provider reads it as access_token.
      await (await fetch(`${base}/o/userinfo?access%5Ftoken=${accessToken}`)).arrayBuffer();
      await (
        await fetch(`${base}/o/authorize?%63ode=${code}&new_password=${encodeURIComponent(password)}`)
      ).arrayBuffer();
      await (
        await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${accessToken}` } })
      ).arrayBuffer();

      // As sent by a client that does not encode: quotes, `;` and `?` inside values, a password in
      // the URL of an absolute request target, a parameter quoted in the user agent, and a byte 0x9b
      // there (Node reads headers as Latin-1: the C1 CSI, which starts a terminal escape sequence).
      const quotedCode = 'quoted-code-Rt5yU8iO2pA';
      const passwordTail = 'colon-Pass-4fG7hJ';
      const nestedCode = 'nested-code-Wq3eR6tY9uI';
      const urlPassword = 'url-password-Kd8fJ2mN5b';
      const agentToken = 'agent-token-Ls4kD7fG0hJ';
      for (const [value, label] of [
        [quotedCode, 'quoted code'],
        [passwordTail, 'password after its semicolon'],
        [nestedCode, 'code in a nested query'],
        [urlPassword, 'password of a URL'],
        [agentToken, 'token in the user agent'],
      ] as const) {
        harness.registerSecret(value, label);
      }
      const host = new URL(base).host;
      const sent = [
        `GET /o/authorize?client_id=wiki&code="${quotedCode}"&state=s1 HTTP/1.1\r\nHost: ${host}\r\n`,
        `GET /o/authorize?client_id=wiki;password=semi;${passwordTail} HTTP/1.1\r\nHost: ${host}\r\n`,
        `GET /o/authorize?next=/o/callback?code=${nestedCode} HTTP/1.1\r\nHost: ${host}\r\n`,
        `GET http://wiki:${urlPassword}@${host}/o/authorize?client_id=wiki HTTP/1.1\r\nHost: ${host}\r\n`,
        `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nX-Request-Id: c1-agent\r\n` +
          `User-Agent: probe \x9b31m ('access_token=${agentToken}')\r\n`,
      ];
      for (const head of sent) assert.match(await rawRequest(base, head), /^HTTP\/1\.1 \d{3} /);

      // What a careless caller might log: whole credential bags, nested.
      app.logger.info(
        { login: { username: 'alice', password }, client: { client_secret: clientSecret } },
        'login',
      );
      app.logger.debug({ tokens: { access_token: accessToken, refresh_token: refreshToken } }, 'issued');
      app.logger.warn({ delivery: { body: { logout_token: logoutToken } } }, `delivering ${logoutToken}`);

      // Audit events name tokens and codes by digest only.
      app.audit.publish({
        kind: 'token_issued',
        client_id: 'wiki',
        user_id: 7,
        grant_type: 'authorization_code',
        token_type: 'access_token',
        format: 'opaque',
        token_sha256: app.secrets.sha256Hex(accessToken),
        expires_at: Date.now() + 3_600_000,
      });
      app.audit.publish({
        kind: 'code_reuse_detected',
        client_id: 'wiki',
        code_hash: app.secrets.sha256Hex(code),
        access_token_id: app.secrets.sha256Hex(accessToken),
        refresh_token_id: app.secrets.sha256Hex(refreshToken),
        reuse_count: 1,
        revoke_succeeded: true,
      });
      // A name from Alliance Auth: a C1 control, a line separator and a right-to-left override.
      const forgedName = 'alice\u009b2J\u2028{"level":60}\u202e';
      app.audit.publish({
        kind: 'admin_change',
        entity: 'user',
        action: 'password_changed',
        entity_id: 7,
        name: forgedName,
        actor: 'cli:root',
        changed_fields: ['password'],
        details: {},
      });

      await harness.assertNoLeaks();
      // The harness saw real output, so passing means something.
      assert.ok(harness.logLines.some((line) => line.includes('"msg":"request completed"')));
      assert.deepEqual(
        harness.auditRecords.map((record) => record.kind),
        ['token_issued', 'code_reuse_detected', 'admin_change'],
      );
      assert.ok(harness.logLines.some((line) => line.includes(app.secrets.sha256Hex(code))));
      // The file holds those three, after the signing key the server's first start created.
      const written = readFileSync(jsonlPath, 'utf8')
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.deepEqual(
        written.map((record) => [record.kind, record.entity, record.action, record.actor]),
        [
          ['admin_change', 'signing_key', 'created', 'system'],
          ['token_issued', undefined, undefined, undefined],
          ['code_reuse_detected', undefined, undefined, undefined],
          ['admin_change', 'user', 'password_changed', 'cli:root'],
        ],
      );
      // The characters are escaped, not dropped: the line reads back as the name.
      assert.equal(written[3]!.name, forgedName);
      const urls = harness.logLines.map((line) => (JSON.parse(line) as { req?: { url?: string } }).req?.url);
      for (const url of [
        '/o/authorize?client_id=wiki&code=[redacted]&state=s1',
        '/o/authorize?client_id=wiki;password=[redacted]',
        '/o/authorize?next=/o/callback?code=[redacted]',
        `http://wiki:[redacted]@${host}/o/authorize?client_id=wiki`,
      ]) {
        assert.ok(urls.includes(url), `no access line for ${url}`);
      }
      const agentLine = harness.logLines
        .map((line) => JSON.parse(line) as { requestId?: string; req?: { userAgent?: string } })
        .find((line) => line.requestId === 'c1-agent');
      // The character is kept, as an escape; the token's value runs to the end of the word.
      assert.equal(agentLine?.req?.userAgent, "probe \u009b31m ('access_token=[redacted]");
    });
  });

  describe('the directory password flows', () => {
    let database: TestDatabase;
    let app: App;
    const harness = createLeakHarness();
    before(async () => {
      database = await createTestDatabase({ migrated: true });
      app = await createApp(
        testConfig(database, { audit: { jsonlPath: path.join(database.dataDir, 'audit.jsonl') } }),
        {
          logger: harness.loggerOptions,
          migrate: true,
        },
      );
      harness.attach(app);
      harness.watchFile(path.join(database.dataDir, 'audit.jsonl'));
    });
    after(async () => {
      await app.close();
      await database.drop();
    });

    it('leak no password and record every change as an admin_change event with its actor', async () => {
      const first = 'first-Password-4u7Qm2';
      const second = 'second-Password-9kX3vB';
      const wrong = 'wrong-Password-1zR8yT';
      harness.registerSecret(first, 'initial password');
      harness.registerSecret(second, 'changed password');
      harness.registerSecret(wrong, 'mistyped password');
      const actor = { actor: 'cli:root' };
      await app.directoryAdmin.createState('Member', 100, true, actor);
      await app.directoryAdmin.createGroup('Pilots', false, actor);
      await app.directoryAdmin.createUser({ username: 'alice', password: first, state: 'Member' }, actor);
      assert.equal((await app.directoryAdmin.verifyPassword('alice', first)).outcome, 'valid');
      assert.equal((await app.directoryAdmin.verifyPassword('alice', wrong)).outcome, 'invalid');
      assert.equal((await app.directoryAdmin.verifyPassword('nobody', wrong)).outcome, 'invalid');
      await app.directoryAdmin.setPassword({ username: 'alice' }, second, actor);
      await app.directoryAdmin.addGroup({ username: 'alice' }, 'Pilots', actor);
      await app.directoryAdmin.deactivate({ username: 'alice' }, { actor: 'admin:bob' });
      const bootstrap = await app.directoryAdmin.ensureBootstrapSuperuser();
      assert.ok(bootstrap, 'a first superuser is created');
      harness.registerSecret(bootstrap.password, 'bootstrap password');
      await assert.rejects(app.directoryAdmin.setPassword({ username: 'alice' }, 'short', actor));

      await harness.assertNoLeaks();
      const changes = harness.auditRecords
        .filter((record) => record.kind === 'admin_change')
        .map((record) => [record.entity, record.action, record.name, record.actor]);
      assert.deepEqual(changes.slice(0, 6), [
        ['state', 'created', 'Member', 'cli:root'],
        ['group', 'created', 'Pilots', 'cli:root'],
        ['user', 'created', 'alice', 'cli:root'],
        ['user', 'password_changed', 'alice', 'cli:root'],
        ['user', 'group_added', 'alice', 'cli:root'],
        ['user', 'deactivated', 'alice', 'admin:bob'],
      ]);
      assert.ok(
        changes.some(
          ([entity, action, name]) =>
            entity === 'user' && action === 'created' && name === bootstrap.username,
        ),
      );
    });
  });
});
