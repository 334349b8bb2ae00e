import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEBIAN_GOPATH, GO_PATH, goOidcUnavailable } from '../helpers/e2e.ts';
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
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'gooidc_flow.go');
const CLEAN_PATH = '/usr/bin:/bin';

/**
 * Builds the Go relying party in GOPATH mode against Debian's sources, into `folder` (with its own
 * build cache there): no module is looked up or downloaded.
 */
async function buildGoRelyingParty(folder: string): Promise<string> {
  const binary = path.join(folder, 'gooidc_flow');
  await promisify(execFile)(GO_PATH, ['build', '-o', binary, SOURCE], {
    cwd: folder,
    env: {
      PATH: CLEAN_PATH,
      HOME: folder,
      GOCACHE: path.join(folder, 'cache'),
      GOPATH: DEBIAN_GOPATH,
      GO111MODULE: 'off',
      GOFLAGS: '',
      GOPROXY: 'off',
    },
    timeout: 300_000,
  });
  return binary;
}

/**
 * Runs the Go relying party with its settings (client secret, password) on stdin, never in argv, and
 * an environment without proxies (its dialer reaches loopback addresses only, whatever the
 * environment says).
 */
function runGoRelyingParty(binary: string, settings: Record<string, string>): Promise<Run> {
  return runRelyingParty(binary, [], { PATH: CLEAN_PATH, LANG: 'C.UTF-8' }, settings);
}

interface Summary extends CodeFlowSummary {
  state_checked: boolean;
  wrong_audience_rejected: boolean;
  forged_signature_rejected: boolean;
  expired_rejected: boolean;
  userinfo: Record<string, unknown>;
  refreshed: {
    rotated: boolean;
    access_token_changed: boolean;
    scope: string;
    id_token_sub: string | null;
    userinfo_sub: string;
  } | null;
}

describe(
  `a relying party built on Go's coreos/go-oidc and golang.org/x/oauth2 (${testDatabaseKind})`,
  { skip: goOidcUnavailable() },
  () => {
    const folder = temporaryFolders('aa-oidc-gooidc-');
    let server: TestServer;
    let binary: string;
    /** The application whitelists the state Member only. */
    let app: { clientId: string; clientSecret: string };
    let redirectUri: string;

    before(async () => {
      [binary, server] = await Promise.all([buildGoRelyingParty(folder()), startServer()]);
      await server.app.directoryAdmin.createState('Member', 100, true);
      await server.app.directoryAdmin.createState('Guest', 10, false);
      await server.app.directoryAdmin.createGroup('Logistics', false);
      // On loopback, so that even a program that followed the redirect would stay on this machine; the
      // program captures the redirect to it without following it, as a relying party's callback would
      // receive it.
      redirectUri = `${server.origin}/gooidc-rp/callback`;
      const created = await seedApp(server, {
        name: 'Go RP',
        redirectUris: [redirectUri],
        states: ['Member'],
      });
      app = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });
    after(async () => {
      await server?.close();
    });

    const settings = (username: string, overrides: Record<string, string> = {}) => ({
      issuer: server.issuer,
      client_id: app.clientId,
      client_secret: app.clientSecret,
      redirect_uri: redirectUri,
      username,
      password: PASSWORD,
      scope: 'openid profile email groups',
      ...overrides,
    });

    it('completes strict discovery, code + PKCE (S256) with state and nonce through the login and consent pages, ID token verification, userinfo and a refresh by the token source', async () => {
      const user = await seedInteropPilot(server, 90000043, 'Gopher Pilot');

      const run = await runGoRelyingParty(binary, settings(user.username));
      const summary = assertCodeFlowRun<Summary>(run, 'gooidc_flow', {
        server,
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        userId: user.id,
      });
      assert.equal(summary.state_checked, true);
      assert.equal(summary.wrong_audience_rejected, true);
      assert.equal(summary.forged_signature_rejected, true);
      assert.equal(summary.expired_rejected, true);

      assert.deepEqual(summary.userinfo, interopPilotUserinfo(user, 90000043, 'Gopher Pilot'));
      assert.deepEqual(summary.refreshed, {
        rotated: true,
        access_token_changed: true,
        scope: 'openid profile email groups',
        id_token_sub: String(user.id),
        userinfo_sub: String(user.id),
      });
    });

    it('stops at the access-denied page for a user whose state the application does not whitelist', async () => {
      const user = await seedUser(server, { state: 'Guest' });
      const run = await runGoRelyingParty(binary, settings(user.username));
      assert.notEqual(run.code, 0);
      assert.equal(run.stdout, '', 'no summary: the program never got a code');
      assert.match(run.stderr, /the provider answered 403 at \/o\//);
    });

    it('fails visibly when the client secret is wrong (the program is not a rubber stamp)', async () => {
      const user = await seedUser(server, { state: 'Member' });
      const run = await runGoRelyingParty(
        binary,
        settings(user.username, { client_secret: `${app.clientSecret}x`, scope: 'openid' }),
      );
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /the provider refused: invalid_client/);
      assert.ok(!run.stderr.includes(app.clientSecret));
    });
  },
);
