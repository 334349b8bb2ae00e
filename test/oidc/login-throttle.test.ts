import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LOGIN_FAILED_MESSAGE, LOGIN_THROTTLED_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';
import { type LoginPage, openLoginPage, submitLogin } from '../helpers/flows.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { Browser, PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

async function openLogin(server: TestServer, clientId: string, browser = new Browser()): Promise<LoginPage> {
  const page = await openLoginPage(server, clientId, browser);
  assert.equal(page.status, 200);
  return page;
}

/** Posts the login form of `login` (optionally to another instance serving the same issuer). */
function submit(
  login: LoginPage,
  username: string,
  password: string,
  options: { origin?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  const target = new URL(login.action);
  if (options.origin) {
    const origin = new URL(options.origin);
    target.host = origin.host;
  }
  return submitLogin(login, username, password, {
    action: target.href,
    ...(options.headers ? { headers: options.headers } : {}),
  });
}

function tally(outcomes: ReadonlyArray<{ status: number }>): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const { status } of outcomes) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

/** Lines of the captured log with this message. */
const linesSaying = (harness: LeakHarness, message: string) =>
  harness.logLines.filter((line) => (JSON.parse(line) as { msg?: string }).msg === message).length;

/**
 * The login throttle holds under concurrency: an attempt reserves its place in the budget before the
 * password is verified, so a burst of parallel guesses gets at most the budget checked (argon2 runs
 * that many times) and the rest 429, on one instance or on several sharing the database.
 */
describe(`login throttle under a burst of parallel guesses (${testDatabaseKind})`, () => {
  const BURST = 24;
  // Default budgets: 5 failures per account and address within 15 minutes.
  const BUDGET = 5;
  let database: TestDatabase;
  let instances: TestServer[];
  let harness: LeakHarness;
  let clientId: string;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    harness = createLeakHarness();
    // Three instances of one issuer (the first's), as behind a load balancer.
    instances = [await startServer({}, { database, harness })];
    const { issuer } = instances[0]!;
    for (let more = 0; more < 2; more += 1)
      instances.push(await startServer({ issuer }, { database, harness }));
    clientId = (await seedApp(instances[0]!)).clientId;
  });
  after(async () => {
    await Promise.allSettled(instances.map((instance) => instance.close()));
    await database.drop();
  });

  it(`checks at most the budget of ${BURST} simultaneous guesses on one interaction, then refuses even the right password`, async () => {
    const server = instances[0]!;
    const user = await seedUser(server);
    harness.registerSecret(PASSWORD, 'the user password');
    const login = await openLogin(server, clientId);
    const checkedBefore = linesSaying(harness, 'login failed');

    const burst = await Promise.all(
      Array.from({ length: BURST }, (_, i) => submit(login, user.username, `wrong guess ${i}`)),
    );
    assert.deepEqual(tally(burst), { 401: BUDGET, 429: BURST - BUDGET });
    assert.equal(
      linesSaying(harness, 'login failed') - checkedBefore,
      BUDGET,
      'the password was verified only for the attempts within the budget',
    );
    for (const outcome of burst.filter((entry) => entry.status === 429))
      assert.ok(outcome.body.includes(LOGIN_THROTTLED_MESSAGE));

    // The right password, beyond the budget, in a burst of its own: nobody signs in.
    const again = await openLogin(server, clientId);
    const right = await Promise.all(Array.from({ length: 20 }, () => submit(again, user.username, PASSWORD)));
    assert.deepEqual(tally(right), { 429: 20 });
    await harness.assertNoLeaks();
  });

  it('holds across three instances sharing the database', async () => {
    const user = await seedUser(instances[0]!);
    const login = await openLogin(instances[0]!, clientId);
    const burst = await Promise.all(
      Array.from({ length: BURST }, (_, i) =>
        submit(login, user.username, i % 2 === 0 ? `wrong ${i}` : PASSWORD.toUpperCase(), {
          origin: instances[i % instances.length]!.origin,
        }),
      ),
    );
    assert.deepEqual(tally(burst), { 401: BUDGET, 429: BURST - BUDGET });
    const right = await Promise.all(
      instances.flatMap((instance) =>
        Array.from({ length: 7 }, () => submit(login, user.username, PASSWORD, { origin: instance.origin })),
      ),
    );
    assert.deepEqual(tally(right), { 429: 21 }, 'the right password beyond the budget signs in nowhere');
  });
});

/**
 * Three budgets, so that nobody can lock an account by guessing: failures per account and client
 * address, per account across all addresses (much larger), per address across accounts. IPv6
 * clients are counted per /64.
 */
describe(`login budgets per account and address (${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;

  before(async () => {
    // Default budgets; client addresses come from X-Forwarded-For, sent here by a loopback "proxy".
    server = await startServer({ trustProxy: true });
    clientId = (await seedApp(server)).clientId;
  });
  after(async () => server.close());

  const from = (address: string) => ({ headers: { 'x-forwarded-for': address } });
  const forgetFailures = () => server.app.database.db.deleteFrom('login_failure').execute();

  it("does not lock out a person signing in from an address with no failures after someone else's guesses", async () => {
    await forgetFailures();
    const user = await seedUser(server);
    const attacker = await openLogin(server, clientId);
    for (let i = 0; i < 5; i += 1)
      assert.equal((await submit(attacker, user.username, `guess ${i}`, from('198.51.100.66'))).status, 401);
    const blocked = await submit(attacker, user.username, PASSWORD, from('198.51.100.66'));
    assert.equal(blocked.status, 429, 'the guessing address has spent its budget for this account');

    const owner = await openLogin(server, clientId);
    const signedIn = await submit(owner, user.username, PASSWORD, from('203.0.113.20'));
    assert.equal(signedIn.status, 303, 'the owner, from another address, signs in');
  });

  it('stops guesses spread over many addresses at the per-account budget', async () => {
    // The same rules with small budgets (the default per-account budget is 50).
    const small = await startServer({
      trustProxy: true,
      login: { maxFailuresPerAccountAndAddress: 2, maxFailuresPerAccount: 6 },
    });
    try {
      const app = (await seedApp(small)).clientId;
      const user = await seedUser(small);
      const login = await openLogin(small, app);
      for (let i = 0; i < 6; i += 1)
        assert.equal(
          (await submit(login, user.username, `guess ${i}`, from(`198.51.100.${i + 1}`))).status,
          401,
        );
      const fresh = await submit(login, user.username, PASSWORD, from('203.0.113.99'));
      assert.equal(fresh.status, 429, 'the 7th attempt on the account is refused from any address');
      assert.ok(fresh.body.includes(LOGIN_THROTTLED_MESSAGE));
      const other = await seedUser(small);
      assert.equal(
        (await submit(login, other.username, PASSWORD, from('198.51.100.1'))).status,
        303,
        'another account from a guessing address is untouched',
      );
    } finally {
      await small.close();
    }
  });

  it('counts an IPv6 client per /64, so rotating the interface identifier gains nothing', async () => {
    await forgetFailures();
    const login = await openLogin(server, clientId);
    // Per-address budget (default 20), across usernames: every address differs, the /64 is one.
    for (let i = 1; i <= 20; i += 1) {
      const outcome = await submit(login, `nobody-${i}`, 'guess', from(`2001:db8:5:6::${i.toString(16)}`));
      assert.equal(outcome.status, 401);
      assert.ok(outcome.body.includes(LOGIN_FAILED_MESSAGE));
    }
    const user = await seedUser(server);
    const sameNetwork = await submit(login, user.username, PASSWORD, from('2001:db8:5:6:ffff:1:2:3'));
    assert.equal(sameNetwork.status, 429);
    const otherNetwork = await submit(
      await openLogin(server, clientId),
      user.username,
      PASSWORD,
      from('2001:db8:5:7::1'),
    );
    assert.equal(otherNetwork.status, 303, 'the next /64 is another address');
  });
});
