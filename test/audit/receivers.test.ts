import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createAuditBus } from '../../src/audit/bus.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import { jsonlAuditReceiver, logAuditReceiver } from '../../src/audit/receivers.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { createMetrics } from '../../src/metrics/registry.ts';

const folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-audit-'));
after(() => rmSync(folder, { recursive: true, force: true }));

function logger(lines: string[] = []) {
  return createLogger(
    { logging: { level: 'info', maskedSecrets: false } },
    { destination: { write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean)) } },
  );
}

const events: AuditEvent[] = [
  {
    kind: 'token_issued',
    client_id: 'wiki',
    user_id: 7,
    grant_type: 'authorization_code',
    token_type: 'access_token',
    format: 'jwt',
    token_sha256: 'b'.repeat(64),
    expires_at: 1_900_000_000_000,
  },
  {
    kind: 'code_reuse_detected',
    client_id: 'wiki',
    code_hash: 'c'.repeat(64),
    access_token_id: 'd'.repeat(64),
    refresh_token_id: null,
    reuse_count: 2,
    revoke_succeeded: true,
  },
  {
    kind: 'admin_change',
    entity: 'user',
    action: 'password_changed',
    entity_id: 7,
    name: 'alice',
    actor: 'cli',
    changed_fields: ['password'],
    details: {},
  },
];

describe('built-in audit receivers', () => {
  it('the JSON-lines sink appends one parsable object per line, time and kind first, in order', async () => {
    const file = path.join(folder, 'nested', 'audit.jsonl');
    const metrics = createMetrics({ defaultMetrics: false });
    const first = createAuditBus({
      logger: logger(),
      metrics,
      receiverTimeoutMs: 2000,
      receivers: [jsonlAuditReceiver(file)],
    });
    for (const event of events) first.publish(event);
    await first.close();
    // A second process (or restart) appends rather than truncates.
    const second = createAuditBus({
      logger: logger(),
      metrics,
      receiverTimeoutMs: 2000,
      receivers: [jsonlAuditReceiver(file)],
    });
    second.publish(events[0]!, { requestId: 'req-9' });
    await second.close();

    const text = readFileSync(file, 'utf8');
    assert.ok(text.endsWith('\n'));
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 4);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      records.map((record) => record.kind),
      ['token_issued', 'code_reuse_detected', 'admin_change', 'token_issued'],
    );
    for (const [index, record] of records.entries()) {
      assert.deepEqual(Object.keys(record).slice(0, 2), ['time', 'kind']);
      assert.ok(!Number.isNaN(Date.parse(String(record.time))));
      const { time: _time, request_id: _requestId, ...body } = record;
      assert.deepEqual(body, events[index % 3]);
    }
    assert.equal(records[3]!.request_id, 'req-9');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const failures = await metrics.auditReceiverFailures.get();
    assert.equal(failures.values.length, 0);
  });

  it('the JSON-lines sink failing (unwritable path) is counted, not thrown', async () => {
    const blocker = path.join(folder, 'not-a-folder');
    writeFileSync(blocker, 'x');
    const metrics = createMetrics({ defaultMetrics: false });
    const bus = createAuditBus({
      logger: logger(),
      metrics,
      receiverTimeoutMs: 2000,
      receivers: [jsonlAuditReceiver(path.join(blocker, 'audit.jsonl'))],
    });
    assert.doesNotThrow(() => bus.publish(events[0]!));
    await bus.close();
    const failures = await metrics.auditReceiverFailures.get();
    assert.deepEqual(
      failures.values.map((value) => [value.labels, value.value]),
      [[{ signal: 'token_issued', receiver: 'jsonl' }, 1]],
    );
  });

  it('the log receiver writes each event at INFO under "audit"', async () => {
    const lines: string[] = [];
    const bus = createAuditBus({
      logger: logger(lines),
      metrics: createMetrics({ defaultMetrics: false }),
      receiverTimeoutMs: 2000,
      receivers: [logAuditReceiver(logger(lines))],
    });
    bus.publish(events[1]!);
    await bus.close();
    const [line] = lines.map((entry) => JSON.parse(entry) as Record<string, unknown>);
    assert.equal(line!.level, 30);
    assert.equal(line!.msg, 'audit code_reuse_detected');
    assert.equal((line!.audit as { code_hash: string }).code_hash, 'c'.repeat(64));
    assert.equal((line!.audit as { reuse_count: number }).reuse_count, 2);
  });
});
