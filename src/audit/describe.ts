import { assertNever } from '../util/assert-never.ts';
import { AUDIT_EVENT_KINDS, type AuditEventKind, type AuditRecord } from './events.ts';

export function isAuditEventKind(value: unknown): value is AuditEventKind {
  return typeof value === 'string' && (AUDIT_EVENT_KINDS as readonly string[]).includes(value);
}

/**
 * One line saying what an audit event means, for people (the admin UI's audit log, `aa-oidc audit
 * list` tables). Never a secret: events carry none.
 */
export function describeAuditEvent(stored: Readonly<Record<string, unknown>>): string {
  if (!isAuditEventKind(stored.kind)) return String(stored.kind ?? '');
  const record = stored as unknown as AuditRecord;
  switch (record.kind) {
    case 'token_issued':
      return `${record.token_type} (${record.format}) issued by ${record.grant_type}`;
    case 'token_revoked':
      return `${record.token_type} revoked: ${record.reason}${record.note ? ` (${record.note})` : ''}`;
    case 'code_reuse_detected':
      return `authorization code presented again (${record.reuse_count}×); its tokens ${record.revoke_succeeded ? 'revoked' : 'could not all be revoked'}`;
    case 'token_introspected':
      return `token introspected by ${record.introspector}: ${record.active ? 'active' : 'inactive'}`;
    case 'logout_required':
      return `back-channel logout queued (${record.reason}${record.with_sid ? ', with sid' : ''})`;
    case 'logout_dispatched':
      return `back-channel logout ${record.outcome} after ${record.attempts} attempt(s)${record.http_status === null ? '' : `, HTTP ${record.http_status}`}`;
    case 'policy_denied':
      return `refused at ${record.stage}: ${record.reason}${record.repeated === undefined ? '' : `, ${record.repeated} more time(s) since`}`;
    case 'admin_change': {
      const fields = record.changed_fields.length > 0 ? ` (${record.changed_fields.join(', ')})` : '';
      return `${record.entity} ${record.name} ${record.action.replaceAll('_', ' ')}${fields} by ${record.actor ?? 'unknown'}`;
    }
    case 'sessions_ended':
      return `${record.count} browser session(s) ended: ${record.reason.replaceAll('_', ' ')} by ${record.actor ?? 'unknown'}`;
    case 'two_factor_failed': {
      // Events kept before the reason and the place were recorded have neither: wrong, at sign-in.
      const code = `${record.code_kind === 'totp' ? 'two-factor' : 'recovery'} code`;
      const what =
        (record.reason as string | undefined) === 'replayed'
          ? `${code} used already, sent again`
          : `wrong ${code}`;
      const where =
        (record.at as string | undefined) === 'account_page'
          ? 'on the account page, to turn two-factor sign-in off,'
          : `after ${record.first_factor.join(', ')}`;
      return `${what} ${where} from ${record.address}`;
    }
    default:
      return assertNever(record);
  }
}
