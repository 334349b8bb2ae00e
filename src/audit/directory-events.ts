import type { ApplicationChangeListener } from '../applications/types.ts';
import type { CommittedListener, LifecycleEvent } from '../directory/builtin/types.ts';
import type { Logger } from '../logging/logger.ts';
import { assertNever } from '../util/assert-never.ts';
import type { AuditBus } from './bus.ts';
import type { AdminChangeEvent } from './events.ts';

/**
 * Maps a committed directory lifecycle event to the `admin_change` audit event; `actor`
 * is the one recorded with the change (`cli:root`, `admin:alice`), null when none was.
 */
export function adminChangeFromLifecycle(
  event: LifecycleEvent,
  actor: string | null = null,
): AdminChangeEvent {
  const user = (
    subject: { userId: number; username: string },
    action: AdminChangeEvent['action'],
    fields: string[],
    details: AdminChangeEvent['details'] = {},
  ): AdminChangeEvent => ({
    kind: 'admin_change',
    entity: 'user',
    action,
    entity_id: subject.userId,
    name: subject.username,
    actor,
    changed_fields: fields,
    details,
  });
  switch (event.kind) {
    case 'user_created':
      return user(event, 'created', []);
    case 'user_deactivated':
      return user(event, 'deactivated', ['is_active'], { is_active: false });
    case 'user_activated':
      return user(event, 'activated', ['is_active'], { is_active: true });
    case 'user_state_changed':
      return user(event, 'state_changed', ['state'], {
        from_state: event.fromState,
        to_state: event.toState,
      });
    case 'user_group_added':
      return user(event, 'group_added', ['groups'], { group: event.group });
    case 'user_group_removed':
      return user(event, 'group_removed', ['groups'], { group: event.group });
    case 'user_deleted':
      return user(event, 'deleted', []);
    case 'user_password_changed':
      return user(event, 'password_changed', ['password']);
    case 'user_updated':
      return user(event, 'updated', [...event.fields]);
    case 'state_created':
      return {
        kind: 'admin_change',
        entity: 'state',
        action: 'created',
        entity_id: event.stateId,
        name: event.name,
        actor,
        changed_fields: [],
        details: { priority: event.priority, oidc_access: event.oidcAccess },
      };
    case 'state_access_changed':
      return {
        kind: 'admin_change',
        entity: 'state',
        action: 'updated',
        entity_id: event.stateId,
        name: event.name,
        actor,
        changed_fields: ['oidc_access'],
        details: { oidc_access: event.oidcAccess },
      };
    case 'state_priority_changed':
      return {
        kind: 'admin_change',
        entity: 'state',
        action: 'updated',
        entity_id: event.stateId,
        name: event.name,
        actor,
        changed_fields: ['priority'],
        details: { from_priority: event.from, to_priority: event.to },
      };
    case 'group_created':
      return {
        kind: 'admin_change',
        entity: 'group',
        action: 'created',
        entity_id: event.groupId,
        name: event.name,
        actor,
        changed_fields: [],
        details: { oidc_access: event.oidcAccess },
      };
    case 'group_access_changed':
      return {
        kind: 'admin_change',
        entity: 'group',
        action: 'updated',
        entity_id: event.groupId,
        name: event.name,
        actor,
        changed_fields: ['oidc_access'],
        details: { oidc_access: event.oidcAccess },
      };
    case 'state_renamed':
    case 'group_renamed':
      return {
        kind: 'admin_change',
        entity: event.kind === 'state_renamed' ? 'state' : 'group',
        action: 'updated',
        entity_id: event.kind === 'state_renamed' ? event.stateId : event.groupId,
        name: event.to,
        actor,
        changed_fields: ['name'],
        details: { from_name: event.from, to_name: event.to },
      };
    case 'state_deleted':
      return {
        kind: 'admin_change',
        entity: 'state',
        action: 'deleted',
        entity_id: event.stateId,
        name: event.name,
        actor,
        changed_fields: [],
        details: {},
      };
    case 'group_deleted':
      return {
        kind: 'admin_change',
        entity: 'group',
        action: 'deleted',
        entity_id: event.groupId,
        name: event.name,
        actor,
        changed_fields: [],
        details: { members: event.members },
      };
    default:
      return assertNever(event);
  }
}

/**
 * The listener to pass to `directory.afterCommit(...)`: every committed change becomes an
 * `admin_change` audit event, with the actor the change was recorded with.
 */
export function auditDirectoryChanges(audit: Pick<AuditBus, 'publish'>, logger: Logger): CommittedListener {
  return (event, meta) => {
    if (meta?.dryRun) return;
    try {
      audit.publish(adminChangeFromLifecycle(event, meta?.actor ?? null));
    } catch (error) {
      // Only an event kind this module does not know yet can land here; the change itself stands.
      logger.error({ err: error, lifecycle: event.kind }, 'directory change could not be audited');
    }
  };
}

/**
 * The listener to pass to `applications.onChange(...)`: every committed application change
 * (create, update, secret rotation, (de)activation) becomes an `admin_change` audit event. The
 * event names the changed fields, never a secret or its digest.
 */
export function auditApplicationChanges(audit: Pick<AuditBus, 'publish'>): ApplicationChangeListener {
  return (change) =>
    audit.publish({
      kind: 'admin_change',
      entity: 'application',
      action: change.action,
      entity_id: change.clientId,
      name: change.name,
      actor: change.actor,
      changed_fields: change.action === 'secret_rotated' ? ['client_secret'] : (change.fields ?? []),
      details: {},
    });
}

/**
 * A signing key's lifecycle change as the key service reports it (src/keys/types.ts, `KeyChange`;
 * audit/ may not use keys/, and services.ts, which hands one to the other, checks that they agree).
 */
export type SigningKeyChange =
  | { action: 'created'; kid: string; formerStatus: string | null; nextKid: string; actor: string | null }
  | {
      action: 'rotated';
      kid: string;
      formerStatus: string | null;
      retiredKid: string | null;
      nextKid: string;
      forced: string | null;
      actor: string | null;
    }
  | { action: 'prepared' | 'retired'; kid: string; actor: string | null }
  | { action: 'imported'; kid: string; status: string; retiredKid: string | null; actor: string | null }
  | {
      action: 'withdrawn';
      kid: string;
      formerStatus: string;
      activatedKid: string | null;
      nextKid: string | null;
      forced: string | null;
      actor: string | null;
    };

/** An `admin_change` event's `details` for a key change: the statuses the named key went between. */
function keyChangeDetails(change: SigningKeyChange): AdminChangeEvent['details'] {
  switch (change.action) {
    case 'created':
      return { from_status: change.formerStatus, to_status: 'active', next_kid: change.nextKid };
    case 'rotated':
      return {
        from_status: change.formerStatus,
        to_status: 'active',
        retired_kid: change.retiredKid,
        next_kid: change.nextKid,
        forced: change.forced,
      };
    case 'prepared':
      return { from_status: null, to_status: 'next' };
    case 'retired':
      return { from_status: 'next', to_status: 'retired' };
    case 'imported':
      return { from_status: null, to_status: change.status, retired_kid: change.retiredKid };
    case 'withdrawn':
      return {
        from_status: change.formerStatus,
        to_status: 'removed',
        activated_kid: change.activatedKid,
        next_kid: change.nextKid,
        forced: change.forced,
      };
    default:
      return assertNever(change);
  }
}

/**
 * The key service's `onKeyChange`: every committed signing-key change (created on a first start,
 * rotated, prepared, retired, imported, withdrawn) becomes an `admin_change` audit event naming the
 * key the change is about, who made it, the statuses it went between (`from_status` null for a key
 * new to this database), the other keys it moved and, where a guard was overridden, `forced`. Key
 * ids are public (JWKS lists them); no key material appears.
 */
export function auditKeyChanges(audit: Pick<AuditBus, 'publish'>): (change: SigningKeyChange) => void {
  return (change) => {
    const details = keyChangeDetails(change);
    audit.publish({
      kind: 'admin_change',
      entity: 'signing_key',
      action: change.action,
      entity_id: change.kid,
      name: change.kid,
      actor: change.actor,
      changed_fields: details.from_status === null ? [] : ['status'],
      details,
    });
  };
}
