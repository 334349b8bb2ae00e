import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { PublishContext } from '../../src/audit/bus.ts';
import type { AuditEvent, PolicyDeniedEvent } from '../../src/audit/events.ts';
import { createDenialCoalescer } from '../../src/oidc/denial-coalescing.ts';

const WINDOW_MS = 60_000;

function refusal(overrides: Partial<PolicyDeniedEvent> = {}): PolicyDeniedEvent {
  return {
    kind: 'policy_denied',
    client_id: 'retired-wiki',
    user_id: null,
    stage: 'authorize',
    reason: 'app_unusable',
    ...overrides,
  };
}

describe('coalescing of refusals any caller can provoke', () => {
  let published: Array<{ event: AuditEvent; context: PublishContext | undefined }>;
  const bus = {
    publish: (event: AuditEvent, context?: PublishContext) => published.push({ event, context }),
  };
  const repeats = () => published.map(({ event }) => (event as PolicyDeniedEvent).repeated);

  beforeEach(() => {
    published = [];
    mock.timers.enable({ apis: ['setInterval'] });
  });
  afterEach(() => mock.timers.reset());

  it('publishes the first refusal at once, then one event a window with the number of identical ones that followed', () => {
    const coalescer = createDenialCoalescer(bus, { windowMs: WINDOW_MS, keys: 100 });
    coalescer.publish(refusal(), { requestId: 'first' });
    for (let index = 0; index < 500; index += 1) coalescer.publish(refusal(), { requestId: `r${index}` });
    assert.deepEqual(published, [{ event: refusal(), context: { requestId: 'first' } }]);

    mock.timers.tick(WINDOW_MS);
    assert.deepEqual(repeats(), [undefined, 500]);
    assert.deepEqual(published[1]!.event, { ...refusal(), repeated: 500 });
    assert.equal(published[1]!.context, undefined, 'the count stands for many requests: no request id');

    // Still refused within the next window: counted again, told at its end.
    for (let index = 0; index < 7; index += 1) coalescer.publish(refusal(), {});
    assert.equal(published.length, 2);
    mock.timers.tick(WINDOW_MS);
    assert.deepEqual(repeats(), [undefined, 500, 7]);

    // A window without any: forgotten, and the next refusal is published at once again.
    mock.timers.tick(WINDOW_MS);
    mock.timers.tick(WINDOW_MS);
    assert.equal(published.length, 3);
    coalescer.publish(refusal(), { requestId: 'later' });
    assert.deepEqual(published[3], { event: refusal(), context: { requestId: 'later' } });
  });

  it('keeps refusals apart that differ in stage, reason, application or user', () => {
    const coalescer = createDenialCoalescer(bus, { windowMs: WINDOW_MS, keys: 100 });
    const distinct = [
      refusal(),
      refusal({ stage: 'validate_silent_auth' }),
      refusal({ client_id: 'another' }),
      refusal({ user_id: 7, reason: 'app' }),
      refusal({ user_id: 8, reason: 'app' }),
      refusal({ user_id: 8, reason: 'global' }),
    ];
    for (const event of [...distinct, ...distinct]) coalescer.publish(event, {});
    assert.deepEqual(
      published.map(({ event }) => event),
      distinct,
    );
    mock.timers.tick(WINDOW_MS);
    assert.deepEqual(
      published.slice(distinct.length).map(({ event }) => event),
      distinct.map((event) => ({ ...event, repeated: 1 })),
    );
  });

  it('publishes the counts it holds when flushed (shutdown), and nothing for a key without repeats', () => {
    const coalescer = createDenialCoalescer(bus, { windowMs: WINDOW_MS, keys: 100 });
    coalescer.publish(refusal(), {});
    coalescer.publish(refusal(), {});
    coalescer.publish(refusal(), {});
    coalescer.publish(refusal({ client_id: 'quiet' }), {});
    coalescer.flush();
    assert.deepEqual(
      published.map(({ event }) => event),
      [refusal(), refusal({ client_id: 'quiet' }), { ...refusal(), repeated: 2 }],
    );
    mock.timers.tick(WINDOW_MS * 3);
    assert.equal(published.length, 3, 'no timer left behind');
  });

  it('publishes a refusal of a key beyond the ones it holds on its own', () => {
    const coalescer = createDenialCoalescer(bus, { windowMs: WINDOW_MS, keys: 2 });
    for (const user of [1, 2, 3, 3, 3]) coalescer.publish(refusal({ user_id: user, reason: 'app' }), {});
    assert.deepEqual(
      published.map(({ event }) => (event as PolicyDeniedEvent).user_id),
      [1, 2, 3, 3, 3],
    );
  });
});
