import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DatabaseFaultError, DatabaseUnavailableError } from '../../src/db/errors.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createLogger } from '../../src/logging/logger.ts';
import {
  askReleasingIfUnanswered,
  createLoginThrottle,
  type LoginThrottle,
} from '../../src/oidc/interactions/throttle.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';

const BUDGETS = {
  maxFailuresPerAccountAndAddress: 5,
  maxFailuresPerAccount: 5,
  maxCodeFailuresPerUser: 5,
  maxFailuresPerAddress: 100,
  failureWindowSeconds: 900,
};

/**
 * A sign-in attempt whose directory could not answer (its database unreachable, or refusing the read
 * as a fault) gives its throttle place back; an answer, a refusal included, or any other error keeps
 * it counted. When our own database cannot give it back either, a warning says so and the directory's
 * error still goes on (to the try-again page).
 */
describe(`login throttle: attempts the directory never answered (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let throttle: LoginThrottle;
  const harness = createLeakHarness();
  const log = createLogger({ logging: { level: 'info', maskedSecrets: false } }, harness.loggerOptions);

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
    throttle = createLoginThrottle(handle.db, handle.kind, BUDGETS);
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  const failures = async () => (await handle.db.selectFrom('login_failure').select('id').execute()).length;

  it('gives the place back when the directory is unreachable or refuses the read as a fault', async () => {
    await handle.db.deleteFrom('login_failure').execute();
    for (const error of [
      new DatabaseUnavailableError("Alliance Auth's database cannot be reached"),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      new DatabaseFaultError('refused a read', 'an Alliance Auth read'),
    ]) {
      const attempt = await throttle.reserve('mira', '192.0.2.1');
      assert.ok(attempt);
      await assert.rejects(
        askReleasingIfUnanswered(throttle, attempt, log, {}, () => Promise.reject(error)),
        (thrown) => thrown === error,
        'the error goes on as it was',
      );
      assert.equal(await failures(), 0, error.message);
    }
  });

  it('keeps the place counted for an answer, a refusal included, and for any other error', async () => {
    await handle.db.deleteFrom('login_failure').execute();
    const refused = await throttle.reserve('mira', '192.0.2.2');
    assert.ok(refused);
    const answer = { outcome: 'refused', reason: 'invalid' } as const;
    assert.equal(await askReleasingIfUnanswered(throttle, refused, log, {}, async () => answer), answer);
    const broken = await throttle.reserve('mira', '192.0.2.2');
    assert.ok(broken);
    await assert.rejects(
      askReleasingIfUnanswered(throttle, broken, log, {}, () => Promise.reject(new TypeError('a bug'))),
      TypeError,
    );
    assert.equal(await failures(), 2);
  });

  it('warns, naming no secret, when our own database cannot give the place back, and keeps the error', async () => {
    await handle.db.deleteFrom('login_failure').execute();
    const attempt = await throttle.reserve('mira', '192.0.2.3');
    assert.ok(attempt);
    // Our database failing as well: its release fails as a statement on a database that is down does.
    const down: Pick<LoginThrottle, 'release'> = {
      release: () => Promise.reject(new DatabaseUnavailableError('cannot reach the database (SQLITE_IOERR)')),
    };
    const outage = new DatabaseUnavailableError('the database cannot be reached');
    harness.registerSecret('Correct-Horse-9-battery', 'the password');
    await assert.rejects(
      askReleasingIfUnanswered(down, attempt, log, { clientId: 'wiki' }, () => Promise.reject(outage)),
      (thrown) => thrown === outage,
    );
    const warned = harness.logLines.filter((line) => /could not give back the throttle place/.test(line));
    assert.equal(warned.length, 1);
    assert.match(warned[0]!, /"level":40/);
    assert.match(warned[0]!, /"clientId":"wiki"/);
    assert.equal(await failures(), 1, 'the attempt stays counted');
    await harness.assertNoLeaks();
  });
});
