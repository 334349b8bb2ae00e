import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { rawRequest } from './raw-request.ts';

/**
 * A query of thousands of parameters: 7,900 (`a&a&…`, near the 16 KB a request's head may hold) were
 * two to four seconds of CPU each in Koa's reading of `ctx.query`, on the landing page and on the
 * provider's endpoints, the server answering no one else meanwhile; a form posted to authorize or
 * logout, read as their query, ten seconds for 12,000 (24 KB, under the 56 KiB such a form may be),
 * a minute at the limit. Koa looked up every value of a name once for each of the query's pairs
 * (`URLSearchParams#getAll` per pair); read in one pass, a request does not call it per pair. The
 * tests count those calls (the server runs in this process) rather than time anything.
 */
const MANY = 7_900;
const MANY_IN_A_FORM = 12_000;
/** Far fewer `getAll` calls than pairs: what the rest of a request may make, none per pair. */
const FEW_LOOKUPS = 100;

/** How many times `URLSearchParams#getAll` is called while `run` runs. */
async function lookupsDuring<T>(run: () => Promise<T> | T): Promise<{ result: T; lookups: number }> {
  const getAll = Object.getOwnPropertyDescriptor(URLSearchParams.prototype, 'getAll')!;
  const original = getAll.value as URLSearchParams['getAll'];
  let lookups = 0;
  Object.defineProperty(URLSearchParams.prototype, 'getAll', {
    ...getAll,
    value(this: URLSearchParams, name: string) {
      lookups += 1;
      return original.call(this, name);
    },
  });
  try {
    const result = await run();
    return { result, lookups };
  } finally {
    Object.defineProperty(URLSearchParams.prototype, 'getAll', getAll);
  }
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe(`queries of many parameters (${testDatabaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(async () => server.close());

  it('answers a query of thousands of parameters at once, on the pages and the provider endpoints that read it, posted forms included', async () => {
    const queries = {
      repeated: 'a&'.repeat(MANY),
      // 3,000 names: 0 to 2999, 14 KB.
      distinct: Array.from({ length: 3_000 }, (_, index) => `${index}`).join('&'),
    };
    for (const path of ['/', '/o/authorize/', '/o/userinfo/', '/o/logout/']) {
      for (const [kind, query] of Object.entries(queries)) {
        const { result: response, lookups } = await lookupsDuring(() =>
          rawRequest(`${server.origin}${path}?${query}`),
        );
        const what = `GET ${path} with ${kind} parameters`;
        assert.notEqual(response.status, 431, `${what}: the request line fits`);
        assert.ok(response.status < 500, `${what}: ${response.status}`);
        assert.ok(lookups < FEW_LOOKUPS, `${what}: ${lookups} lookups of a name's values`);
      }
    }
    for (const path of ['/o/authorize/', '/o/logout/']) {
      const { result: response, lookups } = await lookupsDuring(() =>
        rawRequest(`${server.origin}${path}`, {
          method: 'POST',
          headers: FORM,
          body: 'a&'.repeat(MANY_IN_A_FORM),
        }),
      );
      const what = `POST ${path} with ${MANY_IN_A_FORM} parameters`;
      assert.ok(response.status < 500, `${what}: ${response.status}`);
      assert.ok(lookups < FEW_LOOKUPS, `${what}: ${lookups} lookups of a name's values`);
    }
  });

  it('reads the query as Koa does: a name given once is its value, a repeated one its values in order', async () => {
    const request = new IncomingMessage(new Socket());
    request.method = 'GET';
    request.headers = { host: '127.0.0.1' };
    request.url = `/?a=1&b=2&a=3&__proto__=x&a=%C3%A9&${'p&'.repeat(MANY)}`;
    const ctx = server.app.koa.createContext(request, new ServerResponse(request));
    const { result: query, lookups } = await lookupsDuring(() => ctx.query);
    assert.equal(lookups, 0, 'no name looked up once per pair');
    assert.deepEqual(Object.keys(query), ['a', 'b', '__proto__', 'p']);
    assert.deepEqual(query.a, ['1', '3', 'é']);
    assert.equal(query.b, '2');
    assert.equal(Object.getOwnPropertyDescriptor(query, '__proto__')?.value, 'x');
    assert.equal(Object.getPrototypeOf(query), Object.prototype);
    assert.equal((query.p as string[]).length, MANY);
    assert.equal(ctx.query, query, 'read once per query string');
    ctx.query = { c: ['1', '2'] };
    assert.equal(ctx.querystring, 'c=1&c=2');
    assert.deepEqual({ ...ctx.query }, { c: ['1', '2'] });
  });
});
