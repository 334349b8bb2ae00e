import type Koa from 'koa';

/** A query as Koa reads it: a name given once is its value, a name repeated the array of its values. */
export type Query = Record<string, string | string[]>;

/**
 * Each name of a query with its value or values, in the order the names first come, in one pass.
 * Koa 3's own reading (lib/search-params.js) looks up every value of a name once for each of the
 * query's pairs (`URLSearchParams#getAll` per entry): quadratic, 8,000 pairs (`a&a&…`, the 16 KB a
 * request line holds) were seconds of CPU, the server answering no one else meanwhile. The result is
 * the same object: names as own properties (`__proto__` too), set as Koa sets them.
 */
export function parseQuery(text: string): Query {
  if (text === '') return {};
  const values = new Map<string, string | string[]>();
  for (const [name, value] of new URLSearchParams(text)) {
    const seen = values.get(name);
    if (seen === undefined) values.set(name, value);
    else if (typeof seen === 'string') values.set(name, [seen, value]);
    else seen.push(value);
  }
  const query: Query = {};
  for (const [name, value] of values)
    Object.defineProperty(query, name, { value, writable: true, enumerable: true, configurable: true });
  return query;
}

/** Where a request keeps its last reading of its query, with the text it read. */
const READ = Symbol('query read');

/**
 * `request.query` of `koa`'s requests is read by `parseQuery`, once while a request's query string
 * stays the same (Koa keeps its own readings too); setting it stays Koa's. The provider runs on these
 * requests too (mount.ts), so its parameters are read this way. Defined once on the application's
 * request prototype.
 */
export function readQueriesInLinearTime(koa: Koa): void {
  let holder: object | null = koa.request;
  let koaQuery: PropertyDescriptor | undefined;
  while (holder !== null && koaQuery === undefined) {
    koaQuery = Object.getOwnPropertyDescriptor(holder, 'query');
    holder = Object.getPrototypeOf(holder) as object | null;
  }
  if (koaQuery?.set === undefined) throw new Error("Koa's request has no query setter");
  Object.defineProperty(koa.request, 'query', {
    configurable: true,
    get(this: Koa.Request & { [READ]?: { text: string; query: Query } }): Query {
      const text = this.querystring;
      const kept = this[READ];
      if (kept?.text === text) return kept.query;
      const query = parseQuery(text);
      this[READ] = { text, query };
      return query;
    },
    set: koaQuery.set,
  });
}
