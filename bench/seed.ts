import { randomBytes } from 'node:crypto';
import type { Config } from '../src/config/load.ts';
import { KyselyAdapter } from '../src/oidc/adapter.ts';
import { createServices } from '../src/services.ts';
import type { BenchClient } from './common.ts';
import type { Credentials } from './http.ts';
import { inParallel } from './http.ts';

/** What the bench created in aa-oidc's database. */
export interface SeededAaOidc {
  /** Opaque access tokens (the default format). */
  client: BenchClient;
  /** The same application with `access_token_format: jwt`. */
  jwtClient: BenchClient;
  credentials: Credentials;
  /** Users of the password-login workload (the login throttle budgets attempts per account). */
  loginUsers: Credentials[];
  /** The back-channel fan-out: the state whose access is revoked, and how many deliveries follow. */
  fanout: { state: string; users: number; clientIds: string[] };
}

export const REDIRECT_URI = 'http://127.0.0.1:9/bench/callback';
const ACTOR = 'bench';
const LOGIN_USERS = 8;

export interface SeedOptions {
  /** Users of the fan-out (each in the group the fan-out applications whitelist). */
  fanoutUsers: number;
  /** One back-channel logout URI per fan-out application (the receivers on loopback). */
  receiverUris: readonly string[];
  /** Prints progress. */
  progress(message: string): void;
}

/**
 * Seeds aa-oidc through its own services (migrations, the directory and the applications service,
 * the storage adapter), as `aa-oidc` commands would: a user who signs in with a password, the bench
 * applications, and the fan-out population with live tokens at each fan-out application.
 */
export async function seedAaOidc(config: Config, options: SeedOptions): Promise<SeededAaOidc> {
  const services = await createServices(config, { migrate: true, logger: { level: 'warn' } });
  try {
    const { directoryAdmin: directory, applications } = services;
    await directory.createState('Member', 100, true, { actor: ACTOR });
    await directory.createState('Fleet', 50, true, { actor: ACTOR });
    await directory.createGroup('Fanout', false, { actor: ACTOR });
    // An active superuser, so that `serve` creates no bootstrap login.
    await directory.createUser(
      { username: 'bench-admin', password: randomBytes(18).toString('base64url'), superuser: true },
      { actor: ACTOR },
    );
    const credentials = { username: 'bench', password: randomBytes(18).toString('base64url') };
    await directory.createUser(
      {
        ...credentials,
        email: 'bench@example.org',
        emailVerified: true,
        state: 'Member',
        characterId: 90000001,
        characterName: 'Bench Pilot',
        corporationId: 98000001,
        corporationName: 'Bench Corporation',
        corporationTicker: 'BNCH',
      },
      { actor: ACTOR },
    );

    // The login throttle reserves each attempt per account and per address before argon2 runs, so
    // the password-login workload spreads its logins over accounts, each in state Member too.
    const loginUsers: Credentials[] = [];
    for (let index = 1; index <= LOGIN_USERS; index += 1) {
      const login = { username: `bench-login-${index}`, password: credentials.password };
      await directory.createUser({ ...login, state: 'Member' }, { actor: ACTOR });
      loginUsers.push(login);
    }

    const benchApp = async (name: string, accessTokenFormat: 'opaque' | 'jwt'): Promise<BenchClient> => {
      const created = await applications.create(
        {
          name,
          redirectUris: [REDIRECT_URI],
          grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
          skipAuthorization: true,
          states: ['Member'],
          accessTokenFormat,
        },
        ACTOR,
      );
      return {
        clientId: created.application.clientId,
        clientSecret: created.clientSecret!,
        redirectUri: REDIRECT_URI,
      };
    };
    const client = await benchApp('Bench', 'opaque');
    const jwtClient = await benchApp('Bench JWT', 'jwt');

    const clientIds: string[] = [];
    for (const [index, uri] of options.receiverUris.entries()) {
      const created = await applications.create(
        {
          name: `Fan-out ${index + 1}`,
          redirectUris: [`http://127.0.0.1:9/fanout-${index + 1}/callback`],
          groups: ['Fanout'],
          backchannelLogoutUri: uri,
        },
        ACTOR,
      );
      clientIds.push(created.application.clientId);
    }

    options.progress(`seeding ${options.fanoutUsers} fan-out users with tokens at ${clientIds.length} apps`);
    const userIds = await inParallel(options.fanoutUsers, 8, async (index) => {
      const profile = await directory.createUser(
        { username: `fanout-${index + 1}`, state: 'Fleet', groups: ['Fanout'] },
        { actor: ACTOR },
      );
      return profile.user.id;
    });
    // Each user holds a live access token at every fan-out application, written by the provider's
    // storage adapter as a code exchange would.
    const now = Math.floor(Date.now() / 1000);
    const adapter = new KyselyAdapter('AccessToken', services.database.db);
    await inParallel(userIds.length, 8, async (index) => {
      const accountId = String(userIds[index]);
      const grantId = randomBytes(16).toString('base64url');
      for (const clientId of clientIds) {
        const jti = randomBytes(32).toString('base64url');
        await adapter.upsert(
          jti,
          {
            jti,
            kind: 'AccessToken',
            accountId,
            clientId,
            grantId,
            scope: 'openid',
            iat: now,
            exp: now + 3600,
            expiresWithSession: true,
            sessionUid: randomBytes(16).toString('base64url'),
            gty: 'authorization_code',
          },
          3600,
        );
      }
    });
    return {
      client,
      jwtClient,
      credentials,
      loginUsers,
      fanout: { state: 'Fleet', users: userIds.length, clientIds },
    };
  } finally {
    await services.close();
  }
}
