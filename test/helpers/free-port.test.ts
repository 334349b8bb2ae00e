import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { apacheUnavailable, type RunningApache, startApache } from './apache.ts';
import { type Child, startChild } from './child-process.ts';
import { startCliProcess } from './cli.ts';
import { testEnv } from './config.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { startOnFreePort } from './server.ts';

/** Another process's server on 127.0.0.1:`port`: what takes a free port before the test's server listens. */
async function occupy(port: number): Promise<net.Server> {
  const server = net.createServer((socket) => socket.end());
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** A Node.js HTTP server in a process of its own, answering `hello from PORT`. */
async function startNodeServer(port: number): Promise<Child> {
  const child = startChild(process.execPath, [
    '-e',
    `require('node:http')
      .createServer((request, response) => response.end('hello from ${port}'))
      .listen(${port}, '127.0.0.1', () => console.log('listening'));`,
  ]);
  await child.waitFor(/^listening$/m, 'the listening line');
  return child;
}

describe('startOnFreePort: a child server on a port another process may take first', () => {
  const taken: net.Server[] = [];
  const children: Child[] = [];
  after(async () => {
    await Promise.all(children.map((child) => child.stop('SIGKILL')));
    for (const server of taken) server.close();
  });

  it('starts the child again on another port when the first was taken before it listened', async () => {
    const tried: number[] = [];
    const child = await startOnFreePort(async (port) => {
      tried.push(port);
      if (tried.length === 1) taken.push(await occupy(port));
      return startNodeServer(port);
    });
    children.push(child);
    assert.equal(tried.length, 2, 'a second port after the first was taken');
    assert.notEqual(tried[1], tried[0]);
    const answer = await fetch(`http://127.0.0.1:${tried[1]}/`);
    assert.equal(await answer.text(), `hello from ${tried[1]}`, 'the child serves on the second port');
  });

  it('tries no other port when the child fails for another reason', async () => {
    const tried: number[] = [];
    await assert.rejects(
      startOnFreePort(async (port) => {
        tried.push(port);
        const child = startChild(process.execPath, [
          '-e',
          'console.error("no configuration"); process.exit(2)',
        ]);
        await child.waitFor(/^listening$/m, 'the listening line');
        return child;
      }),
      /ended before the listening line:\n\nno configuration/,
    );
    assert.equal(tried.length, 1);
  });
});

describe('startOnFreePort with `aa-oidc serve`', () => {
  let database: TestDatabase;
  let occupied: net.Server | undefined;
  let serve: Child | undefined;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => {
    await serve?.stop('SIGKILL');
    occupied?.close();
    await database.drop();
  });

  it("recognises serve's own message for a port in use, and serves on the next port", async () => {
    const failures: string[] = [];
    let listening: number | undefined;
    serve = await startOnFreePort(async (port) => {
      if (!occupied) occupied = await occupy(port);
      const child = startCliProcess(
        ['serve'],
        testEnv(database, {
          AA_OIDC_PORT: String(port),
          AA_OIDC_HOST: '127.0.0.1',
          AA_OIDC_METRICS_ENABLED: 'false',
        }),
      );
      try {
        await child.waitFor(/aa-oidc development server on/, 'the listening line');
      } catch (error) {
        failures.push(child.stderr());
        throw error;
      }
      listening = port;
      return child;
    });
    assert.equal(failures.length, 1);
    assert.match(failures[0]!, /the port is already in use/);
    assert.equal((await fetch(`http://127.0.0.1:${listening}/healthz`)).status, 200);
  });
});

describe('startOnFreePort with Apache', { skip: apacheUnavailable([]) }, () => {
  let occupied: net.Server | undefined;
  let apache: RunningApache | undefined;
  after(async () => {
    await apache?.stop();
    occupied?.close();
  });

  it('waits until Apache itself listens, and starts it again on another port when the first was taken', async () => {
    const tried: number[] = [];
    apache = await startOnFreePort(async (port) => {
      tried.push(port);
      if (!occupied) occupied = await occupy(port);
      return startApache(port, [], '', { 'htdocs/index.html': 'served by Apache\n' });
    });
    assert.equal(tried.length, 2);
    assert.equal(apache.origin, `http://127.0.0.1:${tried[1]}`);
    assert.equal(await (await fetch(`${apache.origin}/index.html`)).text(), 'served by Apache\n');
  });
});
