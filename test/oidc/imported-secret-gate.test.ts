import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ImportedSecretCheck } from '../../src/applications/types.ts';
import {
  createImportedSecretGate,
  IMPORTED_SECRET_LIMITS,
  type ImportedSecretAnswer,
} from '../../src/oidc/imported-secret-gate.ts';

/** A stand-in for the PBKDF2 check that finishes only when the test says: counts runs and overlap. */
function heldHasher(right = 'right-secret') {
  const held: Array<() => void> = [];
  let running = 0;
  let mostAtOnce = 0;
  let runs = 0;
  return {
    async verify(_clientId: string, presented: unknown): Promise<ImportedSecretCheck> {
      runs += 1;
      running += 1;
      mostAtOnce = Math.max(mostAtOnce, running);
      await new Promise<void>((resolve) => held.push(resolve));
      running -= 1;
      return { against: 'hash', matches: presented === right };
    },
    /** Lets the oldest held run finish. */
    finishOne(): void {
      held.shift()?.();
    },
    get held() {
      return held.length;
    },
    get runs() {
      return runs;
    },
    get mostAtOnce() {
      return mostAtOnce;
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('the gate of secrets imported as PBKDF2 hashes', () => {
  it('runs one check at a time, queues 16, and refuses the rest unchecked', async () => {
    const hasher = heldHasher();
    const gate = createImportedSecretGate((id, presented) => hasher.verify(id, presented));
    const { running, waiting } = IMPORTED_SECRET_LIMITS;
    const answers: Array<Promise<ImportedSecretAnswer>> = [];
    const answered: string[] = [];
    // 40 wrong secrets at once, each from an address of its own (no throttle in the way).
    for (let i = 0; i < 40; i += 1) {
      const answer = gate.check('legacy', `198.51.100.${i}`, `wrong-${i}`);
      void answer.then(({ outcome }) => answered.push(outcome));
      answers.push(answer);
    }
    await settle();
    assert.equal(hasher.runs, running, 'one PBKDF2 run at a time');
    assert.deepEqual(answered, Array(40 - running - waiting).fill('busy'), 'past the queue, refused at once');
    while (hasher.held > 0) {
      hasher.finishOne();
      await settle();
    }
    const checked = await Promise.all(answers.slice(0, running + waiting));
    assert.ok(checked.every((answer) => answer.outcome === 'checked' && !answer.check.matches));
    assert.equal(hasher.runs, running + waiting, 'only the admitted ones ran PBKDF2');
    assert.equal(hasher.mostAtOnce, running);
    // Free again: the right secret is checked and passes.
    const right = gate.check('legacy', '203.0.113.1', 'right-secret');
    await settle();
    hasher.finishOne();
    const answer = await right;
    assert.ok(answer.outcome === 'checked' && answer.check.matches);
  });

  it('refuses an address unchecked after 5 wrong secrets for a client, not other addresses, and again checks it after the window', async () => {
    const hasher = heldHasher();
    let now = 1_000_000;
    const gate = createImportedSecretGate(
      (id, presented) => hasher.verify(id, presented),
      IMPORTED_SECRET_LIMITS,
      () => now,
    );
    const attacker = '198.51.100.66';
    // Ten at once: five are admitted (they count while they wait), five refused before any runs.
    const answers = Array.from({ length: 10 }, (_, i) => gate.check('legacy', attacker, `guess-${i}`));
    await settle();
    for (let i = 0; i < 5; i += 1) {
      hasher.finishOne();
      await settle();
    }
    const outcomes = (await Promise.all(answers)).map((answer) => answer.outcome);
    assert.deepEqual(outcomes, [...Array(5).fill('checked'), ...Array(5).fill('throttled')]);
    assert.equal(hasher.runs, 5);
    const last = await answers[4];
    assert.ok(last?.outcome === 'checked' && last.throttles, 'the fifth failure starts the refusal');

    // Even the right secret is refused from there, without a run...
    const refused = await gate.check('legacy', attacker, 'right-secret');
    assert.equal(refused.outcome, 'throttled');
    assert.ok(refused.outcome === 'throttled' && refused.retryAfterSeconds === 15 * 60);
    // ...for this client only, and from this address only (an IPv6 /64 counts as one).
    const elsewhere = gate.check('legacy', '203.0.113.5', 'right-secret');
    const otherClient = gate.check('other', attacker, 'right-secret');
    await settle();
    hasher.finishOne();
    await settle();
    hasher.finishOne();
    assert.equal((await elsewhere).outcome, 'checked');
    assert.equal((await otherClient).outcome, 'checked');
    assert.equal(hasher.runs, 7);

    // Once the window has passed, the address is checked again.
    now += 15 * 60_000 + 1;
    const later = gate.check('legacy', attacker, 'right-secret');
    await settle();
    hasher.finishOne();
    const answer = await later;
    assert.ok(answer.outcome === 'checked' && answer.check.matches);
  });

  it("checks a relying party's burst of right secrets from one address, past the budget of checks under way", async () => {
    const hasher = heldHasher();
    const gate = createImportedSecretGate((id, presented) => hasher.verify(id, presented));
    const rp = '203.0.113.20';
    // Eight first requests at once (several sign-ins exchanging their codes): none is wrong.
    const answers = Array.from({ length: 8 }, () => gate.check('legacy', rp, 'right-secret'));
    await settle();
    while (hasher.held > 0) {
      hasher.finishOne();
      await settle();
    }
    const outcomes = await Promise.all(answers);
    assert.deepEqual(
      outcomes.map((answer) => (answer.outcome === 'checked' ? answer.check.matches : answer.outcome)),
      Array(8).fill(true),
    );
    assert.equal(hasher.mostAtOnce, 1);
  });

  it('judges a request that waited on the checks under way of its address by their outcome', async () => {
    const hasher = heldHasher();
    const gate = createImportedSecretGate((id, presented) => hasher.verify(id, presented));
    const address = '198.51.100.7';
    // Four wrong secrets under way, then the right one: the budget has room for it.
    const wrong = Array.from({ length: 4 }, (_, i) => gate.check('legacy', address, `guess-${i}`));
    const right = gate.check('legacy', address, 'right-secret');
    // A sixth waits: it would be refused only if the fifth failed as well.
    const sixth = gate.check('legacy', address, 'guess-again');
    await settle();
    while (hasher.held > 0) {
      hasher.finishOne();
      await settle();
    }
    assert.ok((await Promise.all(wrong)).every((answer) => answer.outcome === 'checked'));
    const passed = await right;
    assert.ok(passed.outcome === 'checked' && passed.check.matches);
    // The success forgot the failures: the sixth is checked (against the digest, in the service).
    assert.equal((await sixth).outcome, 'checked');
    assert.equal(hasher.runs, 6);
  });

  it('counts the requests waiting on their address among the 16 waiting', async () => {
    const hasher = heldHasher();
    const gate = createImportedSecretGate((id, presented) => hasher.verify(id, presented));
    const { running, waiting, failuresPerAddress } = IMPORTED_SECRET_LIMITS;
    const answered: string[] = [];
    const answers: Array<Promise<ImportedSecretAnswer>> = [];
    const ask = (address: string) => {
      const answer = gate.check('legacy', address, 'wrong');
      void answer.then(({ outcome }) => answered.push(outcome));
      answers.push(answer);
    };
    // One address fills its budget and parks as many again; others fill the rest of the queue.
    for (let i = 0; i < 2 * failuresPerAddress; i += 1) ask('198.51.100.1');
    for (let i = 0; i < running + waiting; i += 1) ask(`203.0.113.${i + 1}`);
    await settle();
    const admitted = running + waiting;
    assert.deepEqual(answered, Array(2 * failuresPerAddress + running + waiting - admitted).fill('busy'));
    while (hasher.held > 0) {
      hasher.finishOne();
      await settle();
    }
    await Promise.all(answers);
    assert.equal(hasher.runs, admitted - failuresPerAddress);
  });

  it('counts IPv6 addresses of one /64 together', async () => {
    const hasher = heldHasher();
    const gate = createImportedSecretGate((id, presented) => hasher.verify(id, presented));
    for (let i = 0; i < 5; i += 1) {
      const answer = gate.check('legacy', `2001:db8:1:2::${i + 1}`, 'wrong');
      await settle();
      hasher.finishOne();
      assert.equal((await answer).outcome, 'checked');
    }
    assert.equal((await gate.check('legacy', '2001:db8:1:2:ffff::9', 'wrong')).outcome, 'throttled');
    assert.equal(hasher.runs, 5);
  });

  it('frees its slot when a check throws, and counts no failure', async () => {
    let calls = 0;
    const gate = createImportedSecretGate(async () => {
      calls += 1;
      if (calls <= 6) throw new Error('database unavailable');
      return { against: 'hash', matches: true };
    });
    for (let i = 0; i < 6; i += 1)
      await assert.rejects(gate.check('legacy', '198.51.100.1', 'secret'), /database unavailable/);
    const answer = await gate.check('legacy', '198.51.100.1', 'secret');
    assert.ok(answer.outcome === 'checked' && answer.check.matches);
  });
});
