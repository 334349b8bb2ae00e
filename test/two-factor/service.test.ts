import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import decodeQR from 'qr/decode.js';
import type { AuditEvent } from '../../src/audit/events.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { qrSvg } from '../../src/two-factor/qr.ts';
import {
  createTwoFactorService,
  isCodeShaped,
  RECOVERY_CODE_COUNT,
  REPEAT_CONFIRMATION_WINDOW_MS,
  type TwoFactorService,
} from '../../src/two-factor/service.ts';
import { currentCode, newTotpSecret, otpauthUri } from '../../src/two-factor/totp.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/** Rasterises the QR SVG's unit squares (4 px a module) and reads it back with a QR decoder. */
function decodeSvg(svg: string): string {
  const size = Number(/viewBox="0 0 (\d+) \1"/.exec(svg)![1]);
  const scale = 4;
  const width = size * scale;
  const data = new Uint8Array(width * width * 4).fill(255);
  for (const [, x, y] of svg.matchAll(/M(\d+) (\d+)h1v1h-1z/g)) {
    for (let dy = 0; dy < scale; dy += 1)
      for (let dx = 0; dx < scale; dx += 1) {
        const offset = ((Number(y) * scale + dy) * width + Number(x) * scale + dx) * 4;
        data[offset] = data[offset + 1] = data[offset + 2] = 0;
      }
  }
  return decodeQR({ width, height: width, data });
}

describe(`two-factor sign-in with TOTP (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let clock = Date.parse('2026-05-01T12:00:00Z');
  const events: AuditEvent[] = [];
  let service: TwoFactorService;
  const alice = { id: 7, username: 'alice' };

  before(async () => {
    database = await createTestDatabase();
    handle = openDatabase(testConfig(database).database);
    await migrateToLatest(handle.db, handle.kind);
    service = createTwoFactorService({
      db: handle.db,
      secretKey: 'k'.repeat(40),
      logger: { warn: () => undefined },
      issuerName: 'Goon Fleet',
      audit: { publish: (event) => void events.push(event) },
      now: () => clock,
    });
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  let secret: string;
  let recoveryCodes: string[];

  it('enrols with a QR code of the otpauth URI, kept unconfirmed until a code proves the app has it', async () => {
    const started = await service.beginEnrolment(alice);
    secret = started.secret;
    assert.match(started.uri, /^otpauth:\/\/totp\/Goon%20Fleet:alice\?/);
    assert.ok(started.uri.includes(`secret=${secret}`));
    assert.equal(decodeSvg(qrSvg(started.uri, 'QR code')), started.uri, 'the QR code reads back as the URI');
    assert.deepEqual(await service.status(alice.id), {
      enrolled: false,
      pending: true,
      recoveryCodesLeft: 0,
    });
    const row = await handle.db.selectFrom('totp_enrolment').selectAll().executeTakeFirstOrThrow();
    assert.equal(row.secret_encrypted.includes(secret), false, 'the secret is encrypted at rest');
    assert.deepEqual(
      await service.verify(alice.id, currentCode(secret, clock)),
      { ok: false, reason: 'wrong' },
      'not before confirmation',
    );

    assert.deepEqual(await service.confirmEnrolment(alice, '000000', started.id), { ok: false });
    const restarted = await service.beginEnrolment(alice);
    assert.deepEqual(
      await service.confirmEnrolment(alice, currentCode(restarted.secret, clock), started.id),
      { ok: false },
      'an enrolment started again since is not the one shown: not confirmed, even with its own code',
    );
    secret = restarted.secret;
    const confirmed = await service.confirmEnrolment(alice, currentCode(secret, clock), restarted.id);
    assert.ok(confirmed.ok);
    recoveryCodes = confirmed.recoveryCodes;
    assert.equal(recoveryCodes.length, RECOVERY_CODE_COUNT);
    assert.equal(new Set(recoveryCodes).size, RECOVERY_CODE_COUNT);
    assert.deepEqual(await service.status(alice.id), {
      enrolled: true,
      pending: false,
      recoveryCodesLeft: 10,
    });
    assert.ok(
      events.some(
        (event) =>
          event.kind === 'admin_change' && event.action === 'two_factor_enabled' && event.name === 'alice',
      ),
    );
    await assert.rejects(service.beginEnrolment(alice), /already on/);
  });

  it('takes each recovery code it drew as code-shaped, and none with a look-alike its alphabet leaves out', () => {
    for (const code of recoveryCodes) {
      assert.match(code, /^[a-z0-9]{5}-[a-z0-9]{5}$/);
      assert.equal(isCodeShaped(code, { recovery: true }), true, code);
      assert.equal(isCodeShaped(code, { recovery: false }), false, `${code}: no TOTP code`);
    }
    // Ten letters and digits, but one of them is none a recovery code is drawn from: no user's code,
    // so refused as no code at all rather than counted as a wrong one.
    for (const lookAlike of ['i', 'l', 'o', '0', '1']) {
      const code = `abcde-fghj${lookAlike}`;
      assert.equal(isCodeShaped(code, { recovery: true }), false, code);
    }
    assert.equal(isCodeShaped('abcde-fghjk', { recovery: true }), true, 'the same code of its alphabet');
    assert.equal(isCodeShaped('abcde-fghj', { recovery: true }), false, 'nine characters');
    assert.equal(isCodeShaped('abcde-fghjkm', { recovery: true }), false, 'eleven characters');
  });

  it('two enrolments begun at once (two sign-ins of one superuser) both answer, and the one left pending is one of them', async () => {
    const bob = { id: 8, username: 'bob' };
    for (let round = 0; round < 20; round += 1) {
      const started = await Promise.all([1, 2, 3].map(() => service.beginEnrolment(bob)));
      const pending = await service.pendingEnrolment(bob);
      assert.ok(pending && started.some((enrolment) => enrolment.id === pending.id));
    }
    await service.reset(bob, { actor: 'test', dryRun: false });
  });

  it('shows the codes of a confirmation again only to its confirmer, with the same code, within the window, all unused', async () => {
    const carol = { id: 9, username: 'carol' };
    const started = await service.beginEnrolment(carol);
    const code = currentCode(started.secret, clock);
    const confirmed = await service.confirmEnrolment(carol, code, started.id, 'session-a');
    assert.ok(confirmed.ok);
    const enabledEvents = events.filter((event) => event.kind === 'admin_change' && event.name === 'carol');
    assert.equal(enabledEvents.length, 1);
    const recent = await service.confirmedJustNowBy(carol.id, started.id, 'session-a');
    assert.deepEqual(await recent?.repeat(code), confirmed);
    assert.deepEqual(await service.repeatConfirmation(carol, code, started.id, 'session-a'), confirmed);
    assert.deepEqual(
      events.filter((event) => event.kind === 'admin_change' && event.name === 'carol'),
      enabledEvents,
      'nothing enabled again',
    );
    assert.deepEqual(await service.confirmEnrolment(carol, code, started.id, 'session-a'), { ok: false });
    for (const [confirmer, shown, again] of [
      ['session-b', started.id, code],
      ['', started.id, code],
      ['session-a', 'x'.repeat(43), code],
      ['session-a', started.id, currentCode(started.secret, clock + 30_000)],
      ['session-a', started.id, code === '000000' ? '111111' : '000000'],
    ] as const)
      assert.deepEqual(await service.repeatConfirmation(carol, again, shown, confirmer), { ok: false });
    assert.equal(await service.confirmedJustNowBy(carol.id, started.id, 'session-b'), undefined);

    // After the window: not again, even with a code still valid then.
    const saved = clock;
    clock += REPEAT_CONFIRMATION_WINDOW_MS + 1;
    assert.equal(await service.confirmedJustNowBy(carol.id, started.id, 'session-a'), undefined);
    assert.deepEqual(await recent?.repeat(code), { ok: false }, 'nor from a confirmation read within it');
    assert.deepEqual(await service.repeatConfirmation(carol, code, started.id, 'session-a'), { ok: false });
    clock = saved;
    // Once one recovery code is used: not again.
    assert.ok((await service.verify(carol.id, confirmed.recoveryCodes[0]!)).ok);
    assert.deepEqual(await service.repeatConfirmation(carol, code, started.id, 'session-a'), { ok: false });
    await service.reset(carol, { actor: 'test' });

    // Confirmed with no confirmer named: never again.
    const other = await service.beginEnrolment(carol);
    const otherCode = currentCode(other.secret, clock);
    const once = await service.confirmEnrolment(carol, otherCode, other.id);
    assert.ok(once.ok);
    assert.equal(new Set(once.recoveryCodes).size, RECOVERY_CODE_COUNT);
    for (const confirmer of ['', 'session-a'])
      assert.deepEqual(await service.repeatConfirmation(carol, otherCode, other.id, confirmer), {
        ok: false,
      });
    await service.reset(carol, { actor: 'test' });
  });

  it('shows nothing from a confirmation read before a recovery code was used, two-factor turned off or reset, or enrolled anew', async () => {
    // The account page reads the confirmation, then waits on the throttle, then repeats it: whatever
    // changed in that gap (another browser signing in with a code it was shown, say) holds.
    const dave = { id: 10, username: 'dave' };
    const confirm = async () => {
      const started = await service.beginEnrolment(dave);
      const code = currentCode(started.secret, clock);
      const confirmed = await service.confirmEnrolment(dave, code, started.id, 'session-a');
      assert.ok(confirmed.ok);
      const recent = await service.confirmedJustNowBy(dave.id, started.id, 'session-a');
      assert.ok(recent);
      return { code, confirmed, recent };
    };
    const changes: [string, (codes: string[]) => Promise<unknown>][] = [
      ['a recovery code used', (codes) => service.verify(dave.id, codes[3]!)],
      ['turned off with a recovery code', (codes) => service.disable(dave, codes[0]!)],
      ['reset by an operator', () => service.reset(dave, { actor: 'test' })],
      [
        'reset and enrolled anew by the same browser',
        async () => {
          await service.reset(dave, { actor: 'test' });
          await confirm();
        },
      ],
    ];
    for (const [change, make] of changes) {
      const { code, confirmed, recent } = await confirm();
      assert.deepEqual(await recent.repeat(code), confirmed, `${change}: repeated before`);
      await make(confirmed.recoveryCodes);
      assert.deepEqual(await recent.repeat(code), { ok: false }, change);
      await service.reset(dave, { actor: 'test' });
    }
  });

  it('accepts a code once: the confirmation code and any code of an earlier step are spent, and told replayed', async () => {
    assert.deepEqual(
      await service.verify(alice.id, currentCode(secret, clock)),
      { ok: false, reason: 'replayed' },
      'the confirmation code',
    );
    clock += 30_000;
    const code = currentCode(secret, clock);
    assert.deepEqual(await service.verify(alice.id, code), { ok: true, method: 'totp' });
    assert.deepEqual(await service.verify(alice.id, code), { ok: false, reason: 'replayed' }, 'a replay');
    assert.deepEqual(
      await service.verify(alice.id, currentCode(secret, clock - 30_000)),
      { ok: false, reason: 'replayed' },
      'the step before, still shown, but before the one accepted',
    );
    clock += 30_000;
    assert.deepEqual(
      await service.verify(alice.id, currentCode(secret, clock - 60_000)),
      { ok: false, reason: 'wrong' },
      'an older step, past the window',
    );
    assert.deepEqual(
      await service.verify(alice.id, currentCode(secret, clock + 30_000)),
      { ok: true, method: 'totp' },
      'one step of clock drift',
    );
  });

  it('accepts a code sent twice at once (a double click) once, and tells the other use replayed', async () => {
    clock += 60_000;
    const code = currentCode(secret, clock);
    const answers = await Promise.all([service.verify(alice.id, code), service.verify(alice.id, code)]);
    assert.deepEqual(answers.map((answer) => (answer.ok ? answer.method : answer.reason)).sort(), [
      'replayed',
      'totp',
    ]);
  });

  it('accepts each recovery code once, typed any way', async () => {
    const code = recoveryCodes[0]!;
    assert.deepEqual(await service.verify(alice.id, ` ${code.toUpperCase().replace('-', ' ')} `), {
      ok: true,
      method: 'recovery_code',
    });
    assert.deepEqual(await service.verify(alice.id, code), { ok: false, reason: 'replayed' });
    assert.equal((await service.status(alice.id)).recoveryCodesLeft, 9);
    assert.deepEqual(await service.verify(alice.id, 'aaaaa-bbbbb'), { ok: false, reason: 'wrong' });
    assert.deepEqual(
      await service.verify(99, code),
      { ok: false, reason: 'wrong' },
      'never for another user',
    );
  });

  it('turns off only with a valid code', async () => {
    assert.deepEqual(await service.disable(alice, '123456'), { ok: false, reason: 'wrong' });
    assert.equal((await service.status(alice.id)).enrolled, true);
    assert.deepEqual(await service.disable(alice, recoveryCodes[1]!), { ok: true, method: 'recovery_code' });
    assert.deepEqual(await service.status(alice.id), {
      enrolled: false,
      pending: false,
      recoveryCodesLeft: 0,
    });
    assert.equal((await handle.db.selectFrom('recovery_code').selectAll().execute()).length, 0);
    assert.ok(
      events.some((event) => event.kind === 'admin_change' && event.action === 'two_factor_disabled'),
    );
  });
});

describe('the QR code of an enrolment', () => {
  const uriOf = (issuer: string, username: string) =>
    otpauthUri({ issuer, username, secret: newTotpSecret() });

  it('holds an otpauth URI of long names (with less error correction), and reads back as it', () => {
    // A community's name of 80 CJK letters and a username of 100: each letter is nine characters
    // percent-encoded, the name twice (label and issuer), more than a QR code with `medium` holds.
    const uri = uriOf('中'.repeat(80), '中'.repeat(100));
    assert.ok(uri.length > 2331 && uri.length <= 2953, `a URI of ${uri.length} characters`);
    assert.equal(decodeSvg(qrSvg(uri, 'QR code')), uri);
  });

  it('shows a note to type the key, not a failed page, for a URI no QR code holds', () => {
    const uri = uriOf('中'.repeat(80), '𠀀'.repeat(150));
    assert.ok(uri.length > 2953, `a URI of ${uri.length} characters`);
    const shown = qrSvg(uri, 'QR code');
    assert.doesNotMatch(shown, /<svg/);
    assert.match(shown, /too long for a QR code: add it in your app by typing the key below/);
  });
});
