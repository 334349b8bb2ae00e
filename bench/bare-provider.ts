/**
 * The reference of `npm run bench`: oidc-provider of the version aa-oidc runs on, bare. Its own
 * in-memory adapter (an LRU of 1,000 entries), one RSA key of the size aa-oidc signs with, and one
 * client equivalent to the bench application (confidential, `client_secret_basic`, the code,
 * refresh and client-credentials grants, PKCE, refresh rotation, codes and tokens bound to the
 * session). Its interaction URL signs the bench user in and grants the scopes at once: the bench
 * only needs a session to exist, aa-oidc's password login is measured apart.
 *
 * Started by bench/engines.ts as a child process; configuration from the environment
 * (BENCH_BARE_PORT, BENCH_BARE_CLIENT as JSON); prints one JSON line `{ "ready": true, … }` once
 * listening.
 */
import { generateKeyPairSync } from 'node:crypto';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { BENCH_SCOPE, MODULUS_BITS, type BenchClient } from './common.ts';

const port = Number(process.env.BENCH_BARE_PORT);
const client = JSON.parse(process.env.BENCH_BARE_CLIENT ?? '{}') as BenchClient;
const issuer = `http://127.0.0.1:${port}`;
const ttl = JSON.parse(process.env.BENCH_BARE_TTL ?? '{}') as Record<string, number>;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: MODULUS_BITS });
const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };

/** The same claims the bench user has in aa-oidc (a main character, a state and a group). */
function claimsOf(sub: string): { sub: string } & Record<string, unknown> {
  return {
    sub,
    email: 'bench@example.org',
    email_verified: true,
    name: 'Bench Pilot',
    picture: 'https://images.evetech.net/characters/90000001/portrait?size=128',
    preferred_username: 'bench',
    groups: ['Bench', 'Member'],
    eve_character_id: 90000001,
    eve_main_character_id: 90000001,
    eve_corporation_id: 98000001,
    eve_corporation_name: 'Bench Corporation',
    eve_corporation_ticker: 'BNCH',
    eve_affiliation: { corp: 98000001, state: 'Member' },
  };
}

const configuration: Configuration = {
  clients: [
    {
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: [client.redirectUri],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: [jwk as never] },
  cookies: { keys: ['bench cookie signing key, not a secret anywhere else'] },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: () => claimsOf(sub) }),
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: [
      'name',
      'picture',
      'preferred_username',
      'groups',
      'eve_character_id',
      'eve_main_character_id',
      'eve_corporation_id',
      'eve_corporation_name',
      'eve_corporation_ticker',
      'eve_affiliation',
    ],
  },
  responseTypes: ['code'],
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  expiresWithSession: async () => true,
  ttl,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    claimsParameter: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  interactions: { url: (_ctx: KoaContextWithOIDC, interaction) => `/interaction/${interaction.uid}` },
};

const provider = new Provider(issuer, configuration);

// The interaction: sign the bench user in and grant what was asked, then resume.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !ctx.path.startsWith('/interaction/')) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const clientId = String(details.params.client_id);
  const grant = new provider.Grant({ accountId: '1', clientId });
  grant.addOIDCScope(String(details.params.scope ?? BENCH_SCOPE));
  const grantId = await grant.save();
  await provider.interactionFinished(
    ctx.req,
    ctx.res,
    { login: { accountId: '1' }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
});

const server = provider.listen(port, '127.0.0.1');
server.once('listening', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
