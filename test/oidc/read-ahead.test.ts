import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { testDatabaseKind } from '../helpers/database.ts';
import type { LeakHarness } from '../helpers/leak-harness.ts';
import type { TestServer } from '../helpers/server.ts';
import { watchStatements } from '../helpers/statements.ts';
import {
  type Client,
  codeFlow,
  introspect,
  type Pilot,
  startPilotServer,
  userinfo,
} from '../tokens/helpers.ts';

/** The SQL texts of the statements that read token storage, as the drivers are handed them. */
function recordPayloadReads(): { texts: string[]; restore(): void } {
  const texts: string[] = [];
  const restore = watchStatements((sql) => {
    if (/^\s*select\b/i.test(sql) && /\bfrom\s+"oidc_payload"/i.test(sql)) texts.push(sql);
  });
  return { texts, restore };
}

/** A read of the session and the grant together (a `union all` of the two lookups). */
const SESSION_AND_GRANT = /"uid"\s*=.*\bunion all\b/is;

describe(`userinfo and introspection read a token's session and grant in one statement (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let client: Client;
  let pilot: Pilot;
  let reads: ReturnType<typeof recordPayloadReads>;

  before(async () => {
    ({ harness, server, pilot, client } = await startPilotServer());
    reads = recordPayloadReads();
  });
  after(async () => {
    reads?.restore();
    await harness.assertNoLeaks();
    await server.close();
  });

  async function readsDuring<T>(work: () => Promise<T>): Promise<{ result: T; texts: string[] }> {
    const from = reads.texts.length;
    const result = await work();
    return { result, texts: reads.texts.slice(from) };
  }

  /**
   * Sessions and grants read once are kept in memory (src/oidc/kept-rows.ts); a change made through
   * another path (here an UPDATE that changes nothing) drops them, so that the next request reads them.
   */
  const forgetSessionsAndGrants = () =>
    sql`update oidc_payload set payload = payload where model in ('Session', 'Grant')`.execute(
      server.app.database.db,
    );

  it('userinfo: the token, then its session and grant together', async () => {
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    await forgetSessionsAndGrants();
    const { result, texts } = await readsDuring(() => userinfo(server, accessToken));
    assert.equal(result.status, 200);
    assert.equal(texts.length, 2, texts.join('\n'));
    assert.match(texts[1]!, SESSION_AND_GRANT);
  });

  it('introspection: the token, then its session and grant together', async () => {
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    await forgetSessionsAndGrants();
    const { result, texts } = await readsDuring(() => introspect(server, client, accessToken));
    assert.equal(result.active, true);
    assert.equal(texts.length, 2, texts.join('\n'));
    assert.match(texts[1]!, SESSION_AND_GRANT);
  });

  it('a session ended since the token was issued is seen by the request that reads it ahead', async () => {
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    // Ended through another path (another instance, a CLI command): the rows are gone.
    await sql`delete from oidc_payload where model = 'Session'`.execute(server.app.database.db);
    assert.equal((await userinfo(server, accessToken)).status, 401);
    assert.equal((await introspect(server, client, accessToken)).active, false);
  });
});
