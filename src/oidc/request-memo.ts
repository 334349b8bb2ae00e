/**
 * Values kept for the duration of one provider request, and no longer: the one per-request cache of
 * aa-oidc. Entries are kept on the request's context, so they vanish with the request and
 * the next request reads the database again (a deactivation or a whitelist change made since is
 * seen). Without a request (the CLI, interaction pages outside the provider, tests calling a hook
 * directly) nothing is kept.
 *
 * Used for: one application load per request (request-applications.ts), one profile load per user
 * (find-account.ts), one `save_bearer` decision per user and application (save-bearer.ts), one
 * recorded refusal per stage (policy-enforcer.ts), and the token rows a code exchange holds back
 * (code-exchange.ts).
 */
/**
 * Where a request's values live: one map on the request object itself, by memo, so that they go
 * with it. A property under a symbol of this module: no other code sees it (`Object.keys`,
 * `JSON.stringify` and Koa's `inspect` skip symbols), and, unlike a WeakMap per memo, it costs no
 * weak table entries for the garbage collector to trace on every request.
 */
const VALUES = Symbol('aa-oidc request memo');
type Slots = Map<object, Held<unknown, unknown>>;
/** A request object that cannot take the property (frozen, sealed) keeps its values here. */
const unextensible = new WeakMap<object, Slots>();

/**
 * A memo's one value in a request: most memos hold a single key per request (its epoch, its code
 * exchange, its one application), and a pair is a fraction of a map's size; a second key makes it a map.
 */
class Single<K, V> {
  readonly key: K;
  value: V;
  constructor(key: K, value: V) {
    this.key = key;
    this.value = value;
  }
}
type Held<K, V> = Single<K, V> | Map<K, V>;

/** The key equality of a `Map` (SameValueZero). */
function sameKey(a: unknown, b: unknown): boolean {
  return a === b || (a !== a && b !== b);
}

function slotsOf(request: object, create: true): Slots;
function slotsOf(request: object, create: false): Slots | undefined;
function slotsOf(request: object, create: boolean): Slots | undefined {
  const holder = request as { [VALUES]?: Slots };
  let slots = holder[VALUES] ?? unextensible.get(request);
  if (slots === undefined && create) {
    slots = new Map();
    if (Object.isExtensible(request)) holder[VALUES] = slots;
    else unextensible.set(request, slots);
  }
  return slots;
}

export class RequestMemo<K, V> {
  #held(request: object): Held<K, V> | undefined {
    return slotsOf(request, false)?.get(this) as Held<K, V> | undefined;
  }

  #put(request: object, key: K, value: V): void {
    const slots = slotsOf(request, true);
    const held = slots.get(this) as Held<K, V> | undefined;
    if (held === undefined) {
      slots.set(this, new Single(key, value));
    } else if (held instanceof Single && sameKey(held.key, key)) {
      held.value = value;
    } else if (held instanceof Single) {
      slots.set(
        this,
        new Map([
          [held.key, held.value],
          [key, value],
        ]) as Map<unknown, unknown>,
      );
    } else {
      held.set(key, value);
    }
  }

  /** The value kept for `key` in this request; `make()` it the first time (every time without a request). */
  get(request: object | undefined, key: K, make: () => V): V {
    if (!request) return make();
    const held = this.#held(request);
    if (held instanceof Single) {
      if (sameKey(held.key, key)) return held.value;
    } else if (held?.has(key)) {
      return held.get(key)!;
    }
    const value = make();
    this.#put(request, key, value);
    return value;
  }

  /** The value kept for `key` in this request, if any; never makes one. */
  peek(request: object | undefined, key: K): V | undefined {
    if (!request) return undefined;
    const held = this.#held(request);
    if (held instanceof Single) return sameKey(held.key, key) ? held.value : undefined;
    return held?.get(key);
  }

  /** Keeps `value` for `key` in this request (nothing without a request). */
  set(request: object | undefined, key: K, value: V): void {
    if (!request) return;
    this.#put(request, key, value);
  }

  /** Forgets `key` in this request (only while it still holds `value`, when given), or all of it. */
  forget(request: object | undefined, key?: K, value?: V): void {
    if (!request) return;
    if (key === undefined) {
      slotsOf(request, false)?.delete(this);
      return;
    }
    const held = this.#held(request);
    if (held instanceof Single) {
      if (sameKey(held.key, key) && (value === undefined || held.value === value))
        slotsOf(request, false)?.delete(this);
    } else if (held && (value === undefined || held.get(key) === value)) {
      held.delete(key);
    }
  }
}

/**
 * A loader that loads each key once per request (`load` is told the request too). A rejected load
 * is not kept: a later ask in the same request tries again.
 */
export function loadOncePerRequest<K, V>(
  load: (key: K, request: object | undefined) => Promise<V>,
): (request: object | undefined, key: K) => Promise<V> {
  const memo = new RequestMemo<K, Promise<V>>();
  return (request, key) =>
    // The handler that forgets a failed load is attached once, to the load it made (asks that find
    // the load kept make no promise of their own).
    memo.get(request, key, () => {
      const pending = load(key, request);
      pending.catch(() => memo.forget(request, key, pending));
      return pending;
    });
}
