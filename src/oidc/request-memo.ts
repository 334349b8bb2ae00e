/**
 * Values kept for the duration of one provider request, and no longer: the one per-request cache of
 * aa-oidc. Entries are keyed (weakly) on the request's context, so they vanish with the request and
 * the next request reads the database again (a deactivation or a whitelist change made since is
 * seen). Without a request (the CLI, interaction pages outside the provider, tests calling a hook
 * directly) nothing is kept.
 *
 * Used for: one application load per request (request-applications.ts), one profile load per user
 * (find-account.ts), one `save_bearer` decision per user and application (save-bearer.ts), one
 * recorded refusal per stage (policy-enforcer.ts), and the token rows a code exchange holds back
 * (code-exchange.ts).
 */
export class RequestMemo<K, V> {
  readonly #byRequest = new WeakMap<object, Map<K, V>>();

  /** The value kept for `key` in this request; `make()` it the first time (every time without a request). */
  get(request: object | undefined, key: K, make: () => V): V {
    if (!request) return make();
    let values = this.#byRequest.get(request);
    if (!values) {
      values = new Map();
      this.#byRequest.set(request, values);
    }
    if (values.has(key)) return values.get(key)!;
    const value = make();
    values.set(key, value);
    return value;
  }

  /** The value kept for `key` in this request, if any; never makes one. */
  peek(request: object | undefined, key: K): V | undefined {
    return request ? this.#byRequest.get(request)?.get(key) : undefined;
  }

  /** Keeps `value` for `key` in this request (nothing without a request). */
  set(request: object | undefined, key: K, value: V): void {
    if (!request) return;
    let values = this.#byRequest.get(request);
    if (!values) {
      values = new Map();
      this.#byRequest.set(request, values);
    }
    values.set(key, value);
  }

  /** Forgets `key` in this request (only while it still holds `value`, when given), or all of it. */
  forget(request: object | undefined, key?: K, value?: V): void {
    if (!request) return;
    if (key === undefined) {
      this.#byRequest.delete(request);
      return;
    }
    const values = this.#byRequest.get(request);
    if (values && (value === undefined || values.get(key) === value)) values.delete(key);
  }
}

/**
 * A loader that loads each key once per request. A rejected load is not kept: a later ask in the
 * same request tries again.
 */
export function loadOncePerRequest<K, V>(
  load: (key: K) => Promise<V>,
): (request: object | undefined, key: K) => Promise<V> {
  const memo = new RequestMemo<K, Promise<V>>();
  return (request, key) => {
    const pending = memo.get(request, key, () => load(key));
    pending.catch(() => memo.forget(request, key, pending));
    return pending;
  };
}
