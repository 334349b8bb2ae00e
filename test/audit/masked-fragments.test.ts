import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/events.ts';
import { runChecks } from '../../src/checks/checks.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import * as flows from '../helpers/flows.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { basicAuth, postForm, startServer, type TestServer } from '../helpers/server.ts';
import {
  type Client,
  codeFlow,
  introspect,
  redeem,
  seedClient,
  seedDirectory,
  seedPilot,
} from '../tokens/helpers.ts';

/** What `maskSecret` shows of a value when masks are enabled: its first and last 4 characters. */
const fragmentOf = (value: string) => `${value.slice(0, 4)}…${value.slice(-4)}`;

/** The JWT's `jti` (what `token_sha256` digests for a JWT access token), or the token itself. */
function digestedValue(token: string): string {
  const parts = token.split('.');
  if (parts.length !== 3) return token;
  return (JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { jti: string }).jti;
}

/** The audit records of the log's lines (`component: audit`, the record under `audit`). */
function loggedRecords(harness: LeakHarness): Array<Record<string, unknown>> {
  return harness.logLines
    .map((line) => JSON.parse(line) as { component?: string; audit?: Record<string, unknown> })
    .filter((line) => line.component === 'audit' && line.audit !== undefined)
    .map((line) => line.audit!);
}

function jsonlRecords(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const hasFragment = (record: Record<string, unknown>) => 'token_masked' in record || 'code_masked' in record;

/** A server of its own database, its audit events in the JSON-lines sink too. */
async function startWatched(
  harness: LeakHarness,
  overrides: Record<string, unknown>,
): Promise<{ server: TestServer; database: TestDatabase; jsonlPath: string }> {
  const database = await createTestDatabase({ migrated: true });
  const jsonlPath = path.join(database.dataDir, 'audit.jsonl');
  try {
    const server = await startServer({ audit: { jsonlPath }, ...overrides }, { database, harness });
    harness.watchFile(jsonlPath);
    return { server, database, jsonlPath };
  } catch (error) {
    await database.drop();
    throw error;
  }
}

describe(`head/tail fragments of tokens and codes in the audit log (${testDatabaseKind})`, () => {
  describe('in development with logging.maskedSecrets', () => {
    const harness = createLeakHarness({ maskedFragments: true });
    let server: TestServer;
    let database: TestDatabase;
    let jsonlPath: string;
    let opaqueClient: Client;
    let jwtClient: Client;
    /** Every token and code the flows handled, by the sha256 the events name them with. */
    const known = new Map<string, string>();
    const hold = (value: string) => known.set(sha256Hex(digestedValue(value)), digestedValue(value));

    before(async () => {
      ({ server, database, jsonlPath } = await startWatched(harness, {
        logging: { level: 'silent', maskedSecrets: true },
      }));
      await seedDirectory(server);
      const pilot = await seedPilot(server, harness);
      opaqueClient = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
      jwtClient = await seedClient(server, harness, { accessTokenFormat: 'jwt' });

      // token_issued (access and refresh tokens, opaque and JWT), token_introspected, token_revoked
      // (a refresh token's rotation, the revocation endpoint), code_reuse_detected.
      const opaque = await codeFlow(server, harness, opaqueClient, pilot);
      const jwt = await codeFlow(server, harness, jwtClient, pilot);
      for (const token of [opaque.accessToken, opaque.refreshToken!, jwt.accessToken, jwt.refreshToken!])
        hold(token);
      hold(opaque.code);
      assert.equal((await introspect(server, opaqueClient, opaque.accessToken)).active, true);
      assert.equal((await introspect(server, jwtClient, jwt.accessToken)).active, true);
      const refreshed = await flows.tokenRequest(server, opaqueClient, {
        grant_type: 'refresh_token',
        refresh_token: opaque.refreshToken!,
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      for (const name of ['access_token', 'refresh_token'] as const) {
        const token = refreshed.body[name];
        if (typeof token !== 'string') continue;
        harness.registerSecret(token, `refreshed ${name}`);
        hold(token);
      }
      const revoked = await postForm(
        `${server.issuer}/revoke_token/`,
        { token: String(refreshed.body.access_token) },
        { authorization: basicAuth(opaqueClient.clientId, opaqueClient.clientSecret) },
      );
      assert.equal(revoked.status, 200);
      const replay = await redeem(server, opaqueClient, opaque);
      assert.equal(replay.status, 400);
      await server.app.audit.idle();
    });
    after(async () => {
      await server?.close();
      await database?.drop();
    });

    it("adds to the log's records the first and last 4 characters of the token each names by digest", () => {
      const records = loggedRecords(harness).filter((record) => 'token_sha256' in record);
      const shown = new Set<string>();
      for (const record of records) {
        const what = `${String(record.kind)} ${String(record.reason ?? '')}`;
        const value = known.get(String(record.token_sha256));
        if (record.kind === 'token_revoked' && record.reason === 'code_reuse') {
          // Told from the stored rows, which keep a digest only: nothing to take a fragment of.
          assert.equal(record.token_masked, undefined, what);
          continue;
        }
        assert.ok(value, `${what}: a token the flows handled`);
        assert.equal(record.token_masked, fragmentOf(value), what);
        shown.add(what.trim());
      }
      assert.deepEqual([...shown].sort(), [
        'token_introspected',
        'token_issued',
        'token_revoked refresh_rotation',
        'token_revoked revocation_endpoint',
      ]);
      // A JWT access token is named by its jti, as token_sha256 names it; an opaque one by itself.
      const jwtIssued = records.find((record) => record.kind === 'token_issued' && record.format === 'jwt');
      assert.ok(jwtIssued, 'a JWT access token was issued');
      assert.match(String(jwtIssued.token_masked), /^[\w-]{4}…[\w-]{4}$/);
    });

    it('names a replayed code by its first and last 4 characters in code_reuse_detected', () => {
      const [reuse] = loggedRecords(harness).filter((record) => record.kind === 'code_reuse_detected');
      assert.ok(reuse, 'code_reuse_detected is logged');
      const code = known.get(String(reuse.code_hash));
      assert.ok(code, 'the replayed code');
      assert.equal(reuse.code_masked, fragmentOf(code));
    });

    it('writes the same fragments to the JSON-lines sink', () => {
      const project = (record: Record<string, unknown>) =>
        JSON.stringify([record.kind, record.token_sha256, record.token_masked, record.code_masked]);
      const logged = loggedRecords(harness).filter(hasFragment).map(project);
      assert.ok(logged.length >= 8, `fragments in ${logged.length} log lines`);
      assert.deepEqual(jsonlRecords(jsonlPath).filter(hasFragment).map(project), logged);
    });

    it("keeps them out of the database's audit table and of the events other receivers get", async () => {
      const stored = await server.app.auditStore.list({ limit: 1000 });
      const tokenEvents = stored.filter((event) => 'token_sha256' in event.record);
      assert.ok(tokenEvents.length >= 8, `${tokenEvents.length} token events stored`);
      assert.ok(stored.some((event) => event.kind === 'code_reuse_detected'));
      assert.deepEqual(
        stored.filter((event) => hasFragment(event.record)).map((event) => event.kind),
        [],
      );
      const received = harness.auditRecords as ReadonlyArray<AuditRecord & Record<string, unknown>>;
      assert.ok(received.some((record) => record.kind === 'token_issued'));
      assert.deepEqual(received.filter(hasFragment), []);
    });

    it('never shows a whole token or code', async () => {
      await harness.assertNoLeaks();
    });
  });

  describe('by default', () => {
    const harness = createLeakHarness();
    let server: TestServer;
    let database: TestDatabase;
    let jsonlPath: string;

    before(async () => {
      ({ server, database, jsonlPath } = await startWatched(harness, {}));
      await seedDirectory(server);
      const pilot = await seedPilot(server, harness);
      const client = await seedClient(server, harness);
      const tokens = await codeFlow(server, harness, client, pilot);
      await introspect(server, client, tokens.accessToken);
      assert.equal((await redeem(server, client, tokens)).status, 400);
      await server.app.audit.idle();
    });
    after(async () => {
      await server?.close();
      await database?.drop();
    });

    it('names tokens and codes by digest only, in the log and the JSON-lines sink', async () => {
      assert.equal(server.app.secrets.masksEnabled, false);
      const logged = loggedRecords(harness);
      for (const kind of ['token_issued', 'token_introspected', 'code_reuse_detected']) {
        assert.ok(
          logged.some((record) => record.kind === kind),
          `${kind} is logged`,
        );
      }
      assert.deepEqual(logged.filter(hasFragment), []);
      assert.ok(jsonlRecords(jsonlPath).some((record) => record.kind === 'token_issued'));
      assert.deepEqual(jsonlRecords(jsonlPath).filter(hasFragment), []);
      await harness.assertNoLeaks();
    });
  });

  describe('in production with logging.maskedSecrets', () => {
    const harness = createLeakHarness();
    const issuer = 'https://auth.example.test/o';
    // The server is reached on loopback; these headers say it is the issuer's host behind a proxy.
    const proxied = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.example.test' };
    let server: TestServer;
    let database: TestDatabase;
    let jsonlPath: string;

    before(async () => {
      ({ server, database, jsonlPath } = await startWatched(harness, {
        mode: 'production',
        issuer,
        secretKey: 'a production secret key of at least 32 chars',
        trustProxy: true,
        logging: { level: 'silent', maskedSecrets: true },
      }));
      const client = await seedClient(server, harness, {
        grantTypes: ['authorization_code', 'client_credentials'],
      });
      const authorization = basicAuth(client.clientId, client.clientSecret);
      const issued = await postForm(
        `${server.origin}/o/token/`,
        { grant_type: 'client_credentials' },
        { authorization, ...proxied },
      );
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      const token = String(issued.body.access_token);
      harness.registerSecret(token, 'client-credentials access token');
      const introspected = await postForm(
        `${server.origin}/o/introspect/`,
        { token },
        { authorization, ...proxied },
      );
      assert.equal(introspected.status, 200, JSON.stringify(introspected.body));
      await server.app.audit.idle();
    });
    after(async () => {
      await server?.close();
      await database?.drop();
    });

    it('names tokens by digest only, and check W001 warns of the setting', async () => {
      assert.equal(server.app.secrets.masksEnabled, false);
      const logged = loggedRecords(harness);
      assert.ok(logged.some((record) => record.kind === 'token_issued'));
      assert.ok(logged.some((record) => record.kind === 'token_introspected'));
      assert.deepEqual(logged.filter(hasFragment), []);
      assert.deepEqual(jsonlRecords(jsonlPath).filter(hasFragment), []);
      await harness.assertNoLeaks();
      const w001 = runChecks(server.app.config, []).find((finding) => finding.id === 'W001');
      assert.equal(w001?.level, 'warning');
    });
  });
});
