import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { apacheUnavailable, startApache, type RunningApache } from '../helpers/apache.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { type Client, login } from '../helpers/flows.ts';
import { seedApp, seedUser, startOnFreePort, startServer, type TestServer } from '../helpers/server.ts';

/**
 * Apache's mod_oauth2 (Debian's libapache2-mod-oauth2) as an OAuth 2.0 resource server in front of
 * an API, with two protected paths: `/introspected/` asks aa-oidc's introspection endpoint about
 * every token it is handed (authenticating as an application of its own; no cached verdicts), and
 * `/jwks/` checks the signature of JWT access tokens against aa-oidc's published keys. A token
 * revoked with `aa-oidc tokens revoke-user`, or whose user is deactivated, is refused by the
 * introspecting path on the very next request.
 */
const skip = apacheUnavailable(['oauth2']);

/** What the API behind the module shows: the claims the module passed on (server-side includes). */
const API_PAGE = `<!DOCTYPE html>
<html><head><title>Inventory</title></head><body>
<p id="sub"><!--#echo var="OAUTH2_CLAIM_sub" --></p>
<p id="client_id"><!--#echo var="OAUTH2_CLAIM_client_id" --></p>
<p id="scope"><!--#echo var="OAUTH2_CLAIM_scope" --></p>
<p id="username"><!--#echo var="OAUTH2_CLAIM_username" --></p>
</body></html>
`;

interface ApiAnswer {
  status: number;
  wwwAuthenticate: string;
  claims: Record<string, string>;
}

describe(`Apache mod_oauth2 as a resource server (${testDatabaseKind})`, { skip }, () => {
  let server: TestServer;
  let apache: RunningApache;
  let opaqueClient: Client;
  let jwtClient: Client;
  /** An application of its own whose tokens are not meant for the API. */
  let otherClient: Client;

  before(async () => {
    server = await startServer();
    await server.app.directoryAdmin.createState('Member', 100, true);
    const resourceServer = await seedApp(server, {
      name: 'Inventory API',
      grantTypes: ['client_credentials'],
      redirectUris: [],
      postLogoutRedirectUris: [],
    });
    const opaque = await seedApp(server, { name: 'Inventory app', accessTokenFormat: 'opaque' });
    const jwt = await seedApp(server, { name: 'Inventory app (JWT)', accessTokenFormat: 'jwt' });
    const other = await seedApp(server, { name: 'Killboard', accessTokenFormat: 'jwt' });
    opaqueClient = { clientId: opaque.clientId, clientSecret: opaque.clientSecret! };
    jwtClient = { clientId: jwt.clientId, clientSecret: jwt.clientSecret! };
    otherClient = { clientId: other.clientId, clientSecret: other.clientSecret! };

    const introspection = new URLSearchParams({
      'introspect.auth': 'client_secret_basic',
      client_id: resourceServer.clientId,
      client_secret: resourceServer.clientSecret!,
      // mod_oauth2 keeps a verdict for 300 s by default; this resource server asks every time.
      expiry: '0',
      'verify.cache': 'introspected',
    });
    apache = await startOnFreePort((port) =>
      startApache(
        port,
        ['oauth2'],
        // Each path keeps its verdicts in a cache of its own: in one shared cache (mod_oauth2 keys
        // verdicts by the token alone), a JWT the JWKS path accepted would pass the introspecting
        // path too, unasked.
        `LogLevel warn
OAuth2Cache shm name=introspected
OAuth2Cache shm name=jwks
AddOutputFilter INCLUDES .shtml
AddType text/html .shtml
<Location /introspected>
  AuthType oauth2
  OAuth2TokenVerify introspect ${server.issuer}/introspect/ ${introspection.toString()}
  Require valid-user
  Options +Includes
</Location>
<Location /jwks>
  AuthType oauth2
  OAuth2TokenVerify jwks_uri ${server.issuer}/.well-known/jwks.json verify.cache=jwks
  Require valid-user
  Options +Includes
</Location>
<Location /inventory-introspected>
  AuthType oauth2
  OAuth2TokenVerify introspect ${server.issuer}/introspect/ ${introspection.toString()}
  Require oauth2_claim client_id:${opaqueClient.clientId}
  Require oauth2_claim client_id:${jwtClient.clientId}
  Options +Includes
</Location>
<Location /inventory-jwks>
  AuthType oauth2
  OAuth2TokenVerify jwks_uri ${server.issuer}/.well-known/jwks.json verify.cache=jwks
  Require oauth2_claim client_id:${jwtClient.clientId}
  Options +Includes
</Location>`,
        {
          'htdocs/introspected/api.shtml': API_PAGE,
          'htdocs/jwks/api.shtml': API_PAGE,
          'htdocs/inventory-introspected/api.shtml': API_PAGE,
          'htdocs/inventory-jwks/api.shtml': API_PAGE,
        },
      ),
    );
  });
  after(async () => {
    if (apache) {
      const log = await apache.errorLog();
      if (/\[(crit|emerg|alert)\]/.test(log)) console.log(`Apache error log:\n${log}`);
      await apache.stop();
    }
    await server?.close();
  });

  /** One API call with the token as a bearer token. */
  async function callApi(
    path: 'introspected' | 'jwks' | 'inventory-introspected' | 'inventory-jwks',
    token: string,
  ): Promise<ApiAnswer> {
    const response = await fetch(`${apache.origin}/${path}/api.shtml`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = await response.text();
    const claims: Record<string, string> = {};
    for (const match of body.matchAll(/<p id="(\w+)">([^<]*)<\/p>/g)) claims[match[1]!] = match[2]!.trim();
    return {
      status: response.status,
      wwwAuthenticate: response.headers.get('www-authenticate') ?? '',
      claims,
    };
  }

  /** A fresh user with a fresh access token (and ID token) of `client`. */
  async function signedIn(client: Client) {
    const user = await seedUser(server, { state: 'Member' });
    const { accessToken, idToken } = await login(server, client, user.username, { scope: 'openid profile' });
    return { user, accessToken, idToken };
  }

  function aaOidc(...args: string[]) {
    return cli(args, testEnv(server.database));
  }

  it('accepts an opaque access token by introspection and refuses it once `tokens revoke-user` revoked it', async () => {
    const { user, accessToken } = await signedIn(opaqueClient);
    // Opaque: one base64url value (it may start with "ey" by chance), not three dot-separated parts.
    assert.match(accessToken, /^[\w-]{43}$/, 'an opaque token');
    const accepted = await callApi('introspected', accessToken);
    assert.equal(accepted.status, 200);
    assert.equal(accepted.claims.sub, String(user.id));
    assert.equal(accepted.claims.client_id, opaqueClient.clientId);
    assert.match(accepted.claims.scope!, /\bprofile\b/);
    // RFC 7662's username, for a token granted profile: what the plugin's introspection answered.
    assert.equal(accepted.claims.username, user.username);

    const revoked = await aaOidc('tokens', 'revoke-user', '--username', user.username);
    assert.equal(revoked.code, 0, revoked.stderr);
    const refused = await callApi('introspected', accessToken);
    assert.equal(refused.status, 401);
    assert.match(refused.wwwAuthenticate, /^Bearer /);
    assert.equal(refused.claims.sub, undefined, 'the API never saw the request');
  });

  it('refuses a token of a user who was deactivated on the next request', async () => {
    const { user, accessToken } = await signedIn(opaqueClient);
    assert.equal((await callApi('introspected', accessToken)).status, 200);
    const deactivated = await aaOidc('user', 'deactivate', user.username);
    assert.equal(deactivated.code, 0, deactivated.stderr);
    assert.equal((await callApi('introspected', accessToken)).status, 401);
  });

  it('accepts a JWT access token by its signature against the JWKS, and by introspection', async () => {
    const { user, accessToken } = await signedIn(jwtClient);
    assert.match(accessToken, /^ey[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
    const bySignature = await callApi('jwks', accessToken);
    assert.equal(bySignature.status, 200);
    assert.equal(bySignature.claims.sub, String(user.id));
    assert.equal(bySignature.claims.client_id, jwtClient.clientId);
    const byIntrospection = await callApi('introspected', accessToken);
    assert.equal(byIntrospection.status, 200);
    assert.equal(byIntrospection.claims.sub, String(user.id));

    const [header, payload, signature] = accessToken.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { sub: string };
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: `${claims.sub}0` })).toString('base64url');
    assert.equal((await callApi('jwks', `${header}.${forged}.${signature}`)).status, 401, 'a forged JWT');

    // A JWT stays valid to whoever checks only its signature until it expires; the introspecting
    // resource server learns of the revocation at once.
    const revoked = await aaOidc('tokens', 'revoke-user', '--username', user.username);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal((await callApi('introspected', accessToken)).status, 401);
    assert.equal((await callApi('jwks', accessToken)).status, 200, 'the signature still verifies');
  });

  it('refuses an opaque token at the JWKS path and a made-up token everywhere', async () => {
    const { accessToken } = await signedIn(opaqueClient);
    assert.equal((await callApi('jwks', accessToken)).status, 401);
    assert.equal((await callApi('introspected', 'not-a-token-aa-oidc-issued')).status, 401);
    const missing = await fetch(`${apache.origin}/introspected/api.shtml`);
    assert.equal(missing.status, 401, 'no token at all');
  });

  it("with `Require valid-user` takes any application's token, even an ID token; `Require oauth2_claim client_id:…` admits the API's own relying parties alone", async () => {
    const mine = await signedIn(jwtClient);
    const foreign = await signedIn(otherClient);
    const mineOpaque = await signedIn(opaqueClient);

    // The hazard the recipe warns of: aa-oidc signs ID tokens and every application's JWT access
    // tokens with the same keys, and introspection answers any confidential application about any
    // token; `Require valid-user` checks neither who the token was for nor what kind it is.
    assert.equal((await callApi('jwks', foreign.accessToken)).status, 200);
    assert.equal((await callApi('jwks', mine.idToken!)).status, 200, 'an ID token passes as a bearer token');
    assert.equal((await callApi('introspected', foreign.accessToken)).status, 200);

    // With the client_id required, the API's relying parties' access tokens pass, and nothing else.
    const viaSignature = await callApi('inventory-jwks', mine.accessToken);
    assert.equal(viaSignature.status, 200);
    assert.equal(viaSignature.claims.sub, String(mine.user.id));
    assert.equal((await callApi('inventory-introspected', mine.accessToken)).status, 200);
    assert.equal((await callApi('inventory-introspected', mineOpaque.accessToken)).status, 200);
    for (const [path, token, what] of [
      ['inventory-jwks', foreign.accessToken, "another application's JWT access token"],
      ['inventory-jwks', mine.idToken!, 'an ID token (it has no client_id)'],
      ['inventory-introspected', foreign.accessToken, "another application's access token"],
    ] as const) {
      const refused = await callApi(path, token);
      assert.equal(refused.status, 401, what);
      assert.equal(refused.claims.sub, undefined, `${what}: the API never saw the request`);
    }
  });
});
