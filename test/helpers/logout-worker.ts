import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createServices, type Services, type ServicesOptions } from '../../src/services.ts';
import { testConfig } from './config.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

/**
 * What the tests of the back-channel logout worker share: a migrated test database and the services
 * on it (with the logout settings a test asks for), a way to make an application that receives
 * back-channel logouts, and users who hold a live token at it, so that deactivating one queues a job.
 */
export interface LogoutWorkerFixture {
  readonly database: TestDatabase;
  readonly services: Services;
  /** A new application receiving back-channel logouts at `backchannelLogoutUri`; its client id. */
  application(name: string, backchannelLogoutUri: string): Promise<string>;
  /**
   * A new user (OIDC access) holding a live access token at `clientId`, as the provider's adapter
   * stores it; its user id. Deactivating the user queues one back-channel logout to the application.
   */
  userHoldingToken(username: string, clientId: string): Promise<number>;
  /** Gives the user a live access token at `clientId` too: deactivating them queues a logout there. */
  tokenAt(userId: number, clientId: string): Promise<void>;
  /** Closes the services, then drops the database. */
  close(): Promise<void>;
}

/**
 * A live access token of the user at each of `clientIds`, stored as the provider's adapter stores
 * them (one statement): deactivating the user then queues a back-channel logout to each application.
 */
export async function insertLiveTokens(
  database: DatabaseHandle,
  userId: number,
  clientIds: readonly string[],
): Promise<void> {
  await database.db
    .insertInto('oidc_payload')
    .values(
      clientIds.map((clientId) => ({
        model: 'AccessToken',
        id: `token-digest-${userId}-${clientId}`,
        payload: '{}',
        grant_id: `grant-${userId}-${clientId}`,
        user_id: String(userId),
        client_id: clientId,
        uid: null,
        user_code: null,
        expires_at: Date.now() + 3_600_000,
        consumed_at: null,
      })),
    )
    .execute();
}

export async function startLogoutWorkerFixture(
  options: {
    /** Logout settings over the test defaults. */
    logout?: Record<string, unknown>;
    /** Options of `createServices` beside `migrate` (a resolver, a connector). */
    services?: Omit<ServicesOptions, 'migrate'>;
  } = {},
): Promise<LogoutWorkerFixture> {
  const database = await createTestDatabase({ migrated: true });
  const services = await createServices(
    testConfig(database, options.logout ? { logout: options.logout } : {}),
    { ...options.services, migrate: true },
  );
  const tokenAt = (userId: number, clientId: string) =>
    insertLiveTokens(services.database, userId, [clientId]);
  return {
    database,
    services,
    tokenAt,
    async application(name, backchannelLogoutUri) {
      const created = await services.applications.create(
        { name, redirectUris: ['https://rp.example.org/cb'], backchannelLogoutUri },
        'test',
      );
      return created.application.clientId;
    },
    async userHoldingToken(username, clientId) {
      const profile = await services.directoryAdmin.createUser({ username, oidcAccess: true });
      await tokenAt(profile.user.id, clientId);
      return profile.user.id;
    },
    async close() {
      await services.close();
      await database.drop();
    },
  };
}
