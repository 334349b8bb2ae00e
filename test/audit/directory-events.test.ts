import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adminChangeFromLifecycle, auditDirectoryChanges } from '../../src/audit/directory-events.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import type { LifecycleEvent, LifecycleEventMeta } from '../../src/directory/builtin/types.ts';
import { createLogger } from '../../src/logging/logger.ts';

const alice = { userId: 7, username: 'alice' };
const user = (action: string, changed_fields: string[], details: Record<string, unknown> = {}) => ({
  kind: 'admin_change',
  entity: 'user',
  action,
  entity_id: 7,
  name: 'alice',
  actor: 'cli:root',
  changed_fields,
  details,
});

const table: Array<[LifecycleEvent, unknown]> = [
  [{ kind: 'user_created', ...alice }, user('created', [])],
  [{ kind: 'user_deactivated', ...alice }, user('deactivated', ['is_active'], { is_active: false })],
  [{ kind: 'user_activated', ...alice }, user('activated', ['is_active'], { is_active: true })],
  [
    { kind: 'user_state_changed', ...alice, fromState: 'Member', toState: 'Guest' },
    user('state_changed', ['state'], { from_state: 'Member', to_state: 'Guest' }),
  ],
  [
    { kind: 'user_group_added', ...alice, group: 'Pilots' },
    user('group_added', ['groups'], { group: 'Pilots' }),
  ],
  [
    { kind: 'user_group_removed', ...alice, group: 'Pilots' },
    user('group_removed', ['groups'], { group: 'Pilots' }),
  ],
  [{ kind: 'user_deleted', ...alice }, user('deleted', [])],
  [{ kind: 'user_password_changed', ...alice }, user('password_changed', ['password'])],
  [{ kind: 'user_updated', ...alice, fields: ['email', 'locale'] }, user('updated', ['email', 'locale'])],
  [
    { kind: 'state_created', stateId: 3, name: 'Blue', priority: 50, oidcAccess: true },
    {
      kind: 'admin_change',
      entity: 'state',
      action: 'created',
      entity_id: 3,
      name: 'Blue',
      actor: 'cli:root',
      changed_fields: [],
      details: { priority: 50, oidc_access: true },
    },
  ],
  [
    { kind: 'state_access_changed', stateId: 3, name: 'Blue', oidcAccess: false },
    {
      kind: 'admin_change',
      entity: 'state',
      action: 'updated',
      entity_id: 3,
      name: 'Blue',
      actor: 'cli:root',
      changed_fields: ['oidc_access'],
      details: { oidc_access: false },
    },
  ],
  [
    { kind: 'group_created', groupId: 4, name: 'Pilots', oidcAccess: false },
    {
      kind: 'admin_change',
      entity: 'group',
      action: 'created',
      entity_id: 4,
      name: 'Pilots',
      actor: 'cli:root',
      changed_fields: [],
      details: { oidc_access: false },
    },
  ],
  [
    { kind: 'group_access_changed', groupId: 4, name: 'Pilots', oidcAccess: true },
    {
      kind: 'admin_change',
      entity: 'group',
      action: 'updated',
      entity_id: 4,
      name: 'Pilots',
      actor: 'cli:root',
      changed_fields: ['oidc_access'],
      details: { oidc_access: true },
    },
  ],
];

const meta = (overrides: Partial<LifecycleEventMeta> = {}): LifecycleEventMeta => ({
  eventId: 1,
  at: Date.now(),
  actor: 'cli:root',
  dryRun: false,
  ...overrides,
});

describe('directory lifecycle events as admin_change audit events', () => {
  for (const [event, expected] of table) {
    it(`maps ${event.kind}`, () => {
      assert.deepEqual(adminChangeFromLifecycle(event, 'cli:root'), expected);
    });
  }

  it('publishes each committed change with the recorded actor, and nothing for a dry run', () => {
    const published: AuditEvent[] = [];
    const listener = auditDirectoryChanges(
      { publish: (event) => void published.push(event) },
      createLogger({ logging: { level: 'silent', maskedSecrets: false } }),
    );
    listener({ kind: 'user_deactivated', ...alice }, meta({ actor: 'admin:bob' }));
    listener({ kind: 'user_deleted', ...alice }, meta({ dryRun: true }));
    listener({ kind: 'user_created', ...alice }, meta({ actor: null }));
    assert.deepEqual(
      published.map((event) => [
        event.kind,
        (event as { action: string }).action,
        (event as { actor: string | null }).actor,
      ]),
      [
        ['admin_change', 'deactivated', 'admin:bob'],
        ['admin_change', 'created', null],
      ],
    );
  });

  it('never carries a password: a password change names the field only', () => {
    const event = adminChangeFromLifecycle({ kind: 'user_password_changed', ...alice });
    assert.deepEqual(event.changed_fields, ['password']);
    assert.deepEqual(event.details, {});
  });
});
