import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { authlibUnavailable, PYTHON_PATH } from '../helpers/e2e.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import {
  assertCodeFlowRun,
  type CodeFlowSummary,
  interopPilotUserinfo,
  type Run,
  runRelyingParty,
  seedInteropPilot,
} from './relying-party.ts';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'authlib_flow.py');

/**
 * Runs the Python relying party with its settings (client secret, password) on stdin, never in
 * argv, and an environment without proxies so that its traffic goes straight to loopback.
 */
function runAuthlib(settings: Record<string, string>): Promise<Run> {
  return runRelyingParty(
    PYTHON_PATH,
    [SCRIPT],
    { PATH: process.env.PATH ?? '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1', LANG: 'C.UTF-8' },
    settings,
  );
}

interface Summary extends CodeFlowSummary {
  nonce_mismatch_rejected: boolean;
  forged_signature_rejected: boolean;
  userinfo: Record<string, unknown>;
  refreshed: {
    rotated: boolean;
    access_token_changed: boolean;
    sent_scope: string | null;
    scope: string;
  } | null;
}

describe(
  `a relying party built on Python authlib (${testDatabaseKind})`,
  { skip: authlibUnavailable() },
  () => {
    let server: TestServer;

    before(async () => {
      server = await startServer();
    });
    after(async () => {
      await server.close();
    });

    it('completes discovery, code + PKCE (S256) through the login and consent pages, id_token validation, userinfo and a refresh', async () => {
      await server.app.directoryAdmin.createState('Member', 100, true);
      await server.app.directoryAdmin.createGroup('Logistics', false);
      const user = await seedInteropPilot(server, 90000042, 'Authlib Pilot');
      // On loopback, so that even a script that followed the redirect would stay on this machine; the
      // script captures the redirect to it without following it, as a relying party's callback would
      // receive it.
      const redirectUri = `${server.origin}/authlib-rp/callback`;
      const app = await seedApp(server, { name: 'Authlib RP', redirectUris: [redirectUri] });
      const secret = app.clientSecret!;

      const run = await runAuthlib({
        issuer: server.issuer,
        client_id: app.clientId,
        client_secret: secret,
        redirect_uri: redirectUri,
        username: user.username,
        password: PASSWORD,
        scope: 'openid profile email groups',
      });
      const summary = assertCodeFlowRun<Summary>(run, 'authlib_flow.py', {
        server,
        clientId: app.clientId,
        clientSecret: secret,
        userId: user.id,
      });
      assert.equal(summary.nonce_mismatch_rejected, true);
      assert.equal(summary.forged_signature_rejected, true);

      assert.deepEqual(summary.userinfo, interopPilotUserinfo(user, 90000042, 'Authlib Pilot'));
      assert.deepEqual(summary.refreshed, {
        rotated: true,
        access_token_changed: true,
        sent_scope: 'openid profile email groups',
        scope: 'openid profile email groups',
      });
    });

    it('keeps refreshing when its scope holds offline_access and a scope aa-oidc does not offer, which authlib sends again with the refresh', async () => {
      const user = await seedUser(server);
      const redirectUri = `${server.origin}/authlib-rp/callback`;
      const app = await seedApp(server, { name: 'Authlib RP', redirectUris: [redirectUri] });
      const run = await runAuthlib({
        issuer: server.issuer,
        client_id: app.clientId,
        client_secret: app.clientSecret!,
        redirect_uri: redirectUri,
        username: user.username,
        password: PASSWORD,
        // offline_access without prompt=consent, and `phone`: the authorization passes both over.
        scope: 'openid email offline_access phone',
      });
      assert.equal(run.code, 0, `authlib_flow.py failed: ${run.stderr}`);
      const summary = JSON.parse(run.stdout) as Summary;
      assert.equal(summary.scope, 'openid email');
      assert.deepEqual(summary.refreshed, {
        rotated: true,
        access_token_changed: true,
        sent_scope: 'openid email offline_access phone',
        scope: 'openid email',
      });
    });

    it('fails visibly when the client secret is wrong (the script is not a rubber stamp)', async () => {
      const user = await seedUser(server);
      const redirectUri = `${server.origin}/authlib-rp/callback`;
      const app = await seedApp(server, { name: 'Authlib RP', redirectUris: [redirectUri] });
      const run = await runAuthlib({
        issuer: server.issuer,
        client_id: app.clientId,
        client_secret: `${app.clientSecret!}x`,
        redirect_uri: redirectUri,
        username: user.username,
        password: PASSWORD,
        scope: 'openid',
      });
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /invalid_client/);
      assert.ok(!run.stderr.includes(app.clientSecret!));
    });
  },
);
