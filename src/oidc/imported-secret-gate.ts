import type { ImportedSecretCheck } from '../applications/types.ts';
import { setNewest } from '../util/bounded-map.ts';
import { addressKey } from '../util/address-key.ts';

/**
 * A client secret imported from the Python plugin as a Django PBKDF2 hash costs one PBKDF2 run per
 * authentication attempt until the first success replaces it (600,000 iterations for Alliance Auth
 * 4, about 0.1 s of a core), right secret or wrong, and client_ids are public: they are in every
 * authorize URL. Unbounded, wrong-secret requests would keep libuv's thread pool (four threads) busy,
 * and Argon2 sign-ins, file reads and DNS lookups wait behind them. So, per process:
 *
 * - at most `running` checks run at once, and at most `waiting` more wait their turn (or for a check
 *   of their own pair, below), first come first served; beyond that a request is refused at once
 *   (`busy`) without any check;
 * - after `failuresPerAddress` wrong secrets for one client from one address (an IPv6 /64) within
 *   `windowMs`, that address is refused unchecked for that client (`throttled`) until the oldest
 *   failure leaves the window. Other addresses are not: a relying party with the right secret still
 *   gets through, and its first success ends the hash, and with it every cost.
 *
 * Checks of a pair under way count against its budget until they end: a request that would go past
 * it only because of them waits (counted among the `waiting`) for one of them to end, and is then
 * judged again: refused if they failed, checked if one succeeded. A check that waited finds the hash
 * replaced when the one before it was a success of the same client: it then compares the cheap
 * digest (`verifyImportedSecret`), so a relying party's burst of parallel first requests all
 * succeed for one PBKDF2 run.
 */
export interface ImportedSecretLimits {
  running: number;
  waiting: number;
  failuresPerAddress: number;
  windowMs: number;
  /** Client and address pairs remembered; the oldest is forgotten first. */
  remembered: number;
}

export const IMPORTED_SECRET_LIMITS: ImportedSecretLimits = {
  // One of libuv's four threads: the others stay free for Argon2 sign-ins, files and DNS.
  running: 1,
  // At 600,000 iterations, about 2 s of work queued at most.
  waiting: 16,
  failuresPerAddress: 5,
  windowMs: 15 * 60_000,
  remembered: 10_000,
};

export type ImportedSecretAnswer =
  /** `throttles` when this wrong secret spent the address's budget: the next ones are refused. */
  | { outcome: 'checked'; check: ImportedSecretCheck; throttles: boolean }
  /** Refused unchecked: `running` checks run and `waiting` wait already. */
  | { outcome: 'busy' }
  /** Refused unchecked: too many wrong secrets from this address lately; seconds until one more is checked. */
  | { outcome: 'throttled'; retryAfterSeconds: number };

export interface ImportedSecretGate {
  check(clientId: string, address: string, presented: unknown): Promise<ImportedSecretAnswer>;
}

interface AddressState {
  /** When recent checks of this pair failed, oldest first. */
  failures: number[];
  /** Checks of this pair running or waiting: they count against the budget until they end. */
  pending: number;
  /** Requests of this pair waiting for one of its pending checks to end, to be judged again. */
  parked: Array<() => void>;
}

export function createImportedSecretGate(
  verify: (clientId: string, presented: unknown) => Promise<ImportedSecretCheck>,
  limits: ImportedSecretLimits = IMPORTED_SECRET_LIMITS,
  now: () => number = Date.now,
): ImportedSecretGate {
  const addresses = new Map<string, AddressState>();
  const queue: Array<() => void> = [];
  let running = 0;
  /** Requests waiting for a check of their own pair to end (`AddressState.parked`, all pairs). */
  let parked = 0;

  const acquire = (): Promise<void> | undefined => {
    if (running < limits.running) {
      running += 1;
      return undefined;
    }
    return new Promise((resolve) => queue.push(resolve));
  };
  // The slot goes straight to the next waiter, if any.
  const release = (): void => {
    const next = queue.shift();
    if (next) next();
    else running -= 1;
  };

  return {
    async check(clientId, address, presented) {
      const key = `${clientId}\n${addressKey(address)}`;
      let state: AddressState | undefined;
      for (;;) {
        const at = now();
        state = addresses.get(key);
        if (state) state.failures = state.failures.filter((failedAt) => failedAt > at - limits.windowMs);
        const failures = state?.failures ?? [];
        if (failures.length >= limits.failuresPerAddress) {
          return {
            outcome: 'throttled',
            retryAfterSeconds:
              failures[0] === undefined
                ? 1
                : Math.max(1, Math.ceil((failures[0] + limits.windowMs - at) / 1000)),
          };
        }
        if (running >= limits.running && queue.length + parked >= limits.waiting) return { outcome: 'busy' };
        if (!state || failures.length + state.pending < limits.failuresPerAddress) break;
        // The budget is spent only if the checks under way fail: wait for one to end, then judge again.
        const { parked: waiters } = state;
        parked += 1;
        await new Promise<void>((resolve) => waiters.push(resolve));
        parked -= 1;
      }
      if (!state) {
        state = { failures: [], pending: 0, parked: [] };
        setNewest(addresses, key, state, limits.remembered);
      }
      state.pending += 1;
      let check: ImportedSecretCheck | undefined;
      try {
        await acquire();
        try {
          check = await verify(clientId, presented);
        } finally {
          release();
        }
      } finally {
        state.pending -= 1;
        if (check?.against === 'hash' && !check.matches) state.failures.push(now());
        const forget = check?.matches === true || (state.pending === 0 && state.failures.length === 0);
        // Unless the bound forgot it meanwhile and a newer request keeps its own.
        if (forget && addresses.get(key) === state) addresses.delete(key);
        for (const wake of state.parked.splice(0)) wake();
      }
      const throttles =
        check.against === 'hash' && !check.matches && state.failures.length === limits.failuresPerAddress;
      return { outcome: 'checked', check, throttles };
    },
  };
}
