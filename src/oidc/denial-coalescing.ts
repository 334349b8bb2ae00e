import type { AuditBus, PublishContext } from '../audit/bus.ts';
import type { PolicyDeniedEvent } from '../audit/events.ts';

/**
 * Refusals a caller can provoke without any credential: the authorization stages (a browser's
 * request, by nature unauthenticated; `validate_silent_auth` asks the same for a signed-in user),
 * and a deactivated public application at the token and introspection endpoints (its client id is
 * all it presents). Each would otherwise be one `policy_denied` event, one row of the database's
 * audit log, kept for `audit.retentionDays`, per request. Identical ones (the same stage, reason,
 * application and user: the whole event) are therefore published once: the first at once, the
 * identical ones that follow within the window only counted, and, at the end of a window in which
 * some were, one more event with their number (`repeated`) that opens the next window. A caller
 * repeating a refused request writes at most two events per window and key, whatever its rate or
 * its addresses; the counters (`aa_oidc_policy_rejections_total`, `aa_oidc_authorize_denied_total`)
 * still count every refusal.
 *
 * The keys are the refusals' contents: applications that exist (an unknown client id is no refusal
 * recorded, client-policy.ts) and users that exist, at most `keys` at once; a refusal beyond is
 * published on its own, as before.
 */
export interface DenialCoalescer {
  /** Publishes `event`, or counts it when an identical one was published within the window. */
  publish(event: PolicyDeniedEvent, context: PublishContext): void;
  /** Publishes the counts still held (shutdown: before the audit bus closes). */
  flush(): void;
}

export interface DenialCoalescingLimits {
  windowMs: number;
  keys: number;
}

export const DENIAL_COALESCING: Readonly<DenialCoalescingLimits> = { windowMs: 60_000, keys: 10_000 };

interface Held {
  event: PolicyDeniedEvent;
  /** Identical refusals since the last event published for this key. */
  repeated: number;
}

export function createDenialCoalescer(
  audit: Pick<AuditBus, 'publish'>,
  limits: Readonly<DenialCoalescingLimits> = DENIAL_COALESCING,
): DenialCoalescer {
  const held = new Map<string, Held>();
  let timer: NodeJS.Timeout | undefined;

  const summarise = (entry: Held) => {
    audit.publish({ ...entry.event, repeated: entry.repeated });
    entry.repeated = 0;
  };
  // One timer for every key: at each tick, a key that saw repeats publishes their count and stays for
  // another window; a key that saw none is forgotten (its next refusal is published at once again).
  const tick = () => {
    for (const [key, entry] of held) {
      if (entry.repeated > 0) summarise(entry);
      else held.delete(key);
    }
    if (held.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  return {
    publish(event, context) {
      const key = `${event.stage} ${event.reason} ${event.client_id ?? ''} ${event.user_id ?? ''}`;
      const entry = held.get(key);
      if (entry) {
        entry.repeated += 1;
        return;
      }
      if (held.size < limits.keys) {
        held.set(key, { event, repeated: 0 });
        if (!timer) {
          timer = setInterval(tick, limits.windowMs);
          timer.unref();
        }
      }
      audit.publish(event, context);
    },
    flush() {
      clearInterval(timer);
      timer = undefined;
      for (const entry of held.values()) if (entry.repeated > 0) summarise(entry);
      held.clear();
    },
  };
}
