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
type Slots = Map<object, Map<unknown, unknown>>;
/** A request object that cannot take the property (frozen, sealed) keeps its values here. */
const unextensible = new WeakMap<object, Slots>();

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
  #values(request: object): Map<K, V> | undefined {
    return slotsOf(request, false)?.get(this) as Map<K, V> | undefined;
  }

  #valuesToWrite(request: object): Map<K, V> {
    const slots = slotsOf(request, true);
    let values = slots.get(this) as Map<K, V> | undefined;
    if (!values) {
      values = new Map();
      slots.set(this, values as Map<unknown, unknown>);
    }
    return values;
  }

  /** The value kept for `key` in this request; `make()` it the first time (every time without a request). */
  get(request: object | undefined, key: K, make: () => V): V {
    if (!request) return make();
    const values = this.#valuesToWrite(request);
    if (values.has(key)) return values.get(key)!;
    const value = make();
    values.set(key, value);
    return value;
  }

  /** The value kept for `key` in this request, if any; never makes one. */
  peek(request: object | undefined, key: K): V | undefined {
    return request ? this.#values(request)?.get(key) : undefined;
  }

  /** Keeps `value` for `key` in this request (nothing without a request). */
  set(request: object | undefined, key: K, value: V): void {
    if (!request) return;
    this.#valuesToWrite(request).set(key, value);
  }

  /** Forgets `key` in this request (only while it still holds `value`, when given), or all of it. */
  forget(request: object | undefined, key?: K, value?: V): void {
    if (!request) return;
    if (key === undefined) {
      slotsOf(request, false)?.delete(this);
      return;
    }
    const values = this.#values(request);
    if (values && (value === undefined || values.get(key) === value)) values.delete(key);
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
