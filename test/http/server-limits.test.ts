import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectionCapsFor } from '../../bench/engines.ts';
import { loadConfig } from '../../src/config/load.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { heldConnection, sendAndWaitForClose } from './held-connections.ts';

describe(`HTTP server limits (${testDatabaseKind})`, () => {
  describe('a request that trickles in', () => {
    let server: TestServer;
    before(async () => {
      server = await startServer(
        {},
        { limits: { headersTimeoutMs: 300, requestTimeoutMs: 400, connectionsCheckingIntervalMs: 50 } },
      );
    });
    after(async () => server.close());

    it('is answered 408 and its connection closed when its headers never end', async () => {
      const closed = await sendAndWaitForClose(
        server.origin,
        'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a',
      );
      assert.equal(closed.closedByServer, true);
      assert.match(closed.answer, /^HTTP\/1\.1 408 /);
    });

    it('is answered 408 and its connection closed when its form body never ends', async () => {
      const closed = await sendAndWaitForClose(
        server.origin,
        'POST /o/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
          'Content-Length: 50000\r\n\r\ngrant_type=client_credentials&scope=',
      );
      assert.equal(closed.closedByServer, true);
      assert.match(closed.answer, /^HTTP\/1\.1 408 /);
    });
  });

  describe('a CONNECT request (this server is no proxy)', () => {
    let server: TestServer;
    before(async () => {
      server = await startServer();
    });
    after(async () => server.close());

    it('is answered 400 with a JSON refusal and its connection closed, not dropped unanswered', async () => {
      for (const target of ['example.com:443', '127.0.0.1:22']) {
        const closed = await sendAndWaitForClose(
          server.origin,
          `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`,
        );
        assert.equal(closed.closedByServer, true);
        const [head, body] = closed.answer.split('\r\n\r\n');
        assert.match(head!, /^HTTP\/1\.1 400 Bad Request\r\n/);
        assert.match(head!, /^Connection: close$/im);
        assert.match(head!, /^Cache-Control: no-store$/im);
        assert.match(head!, /^X-Content-Type-Options: nosniff$/im);
        assert.deepEqual(JSON.parse(body!), {
          error: 'invalid_request',
          error_description: 'This server is not a proxy: it takes no CONNECT requests.',
        });
      }
      assert.equal((await fetch(`${server.origin}/healthz`)).status, 200, 'the server still answers');
    });

    it('answers an Upgrade request as an ordinary request', async () => {
      const closed = await sendAndWaitForClose(
        server.origin,
        'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n',
      );
      assert.equal(closed.closedByServer, true);
      assert.match(closed.answer, /^HTTP\/1\.1 200 /);
    });
  });

  describe('connections at once', () => {
    const beyondTheLimit = async (server: TestServer, limit: number) => {
      const held = [];
      for (let n = 0; n < limit; n += 1) held.push(await heldConnection(server.origin));
      try {
        return await sendAndWaitForClose(
          server.origin,
          'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
        );
      } finally {
        for (const socket of held) socket.destroy();
      }
    };

    it('closes a connection beyond the limit unanswered while the others are held', async () => {
      const server = await startServer(
        {},
        { limits: { maxConnections: 2, maxConnectionsPerAddress: 10, keepAliveTimeoutMs: 60_000 } },
      );
      try {
        const closed = await beyondTheLimit(server, 2);
        assert.equal(closed.closedByServer, true);
        assert.equal(closed.answer, '');
      } finally {
        await server.close();
      }
    });

    it('closes a connection beyond the limit of one client address unanswered', async () => {
      const server = await startServer(
        {},
        { limits: { maxConnections: 10, maxConnectionsPerAddress: 2, keepAliveTimeoutMs: 60_000 } },
      );
      try {
        const closed = await beyondTheLimit(server, 2);
        assert.equal(closed.closedByServer, true);
        assert.equal(closed.answer, '');
      } finally {
        await server.close();
      }
    });

    /** Whether serve, started with `config`, answers one connection more than `held` from one address. */
    const answersOneMore = async (config: Record<string, unknown>, held: number) => {
      const server = await startServer(config, { limits: { keepAliveTimeoutMs: 60_000 } });
      try {
        const closed = await beyondTheLimit(server, held);
        assert.equal(closed.closedByServer, true);
        return /^HTTP\/1\.1 200 /.test(closed.answer);
      } finally {
        await server.close();
      }
    };

    it('holds the configured caps: http.maxConnections and http.maxConnectionsPerAddress', async () => {
      assert.equal(
        await answersOneMore({ http: { maxConnections: 2, maxConnectionsPerAddress: 10 } }, 2),
        false,
      );
      assert.equal(
        await answersOneMore({ http: { maxConnections: 10, maxConnectionsPerAddress: 2 } }, 2),
        false,
      );
    });

    it('admits more connections from one address than the default 100 when http.maxConnectionsPerAddress is raised, or 0', async () => {
      assert.equal(await answersOneMore({}, 100), false, 'the default: 100');
      assert.equal(await answersOneMore({ http: { maxConnectionsPerAddress: 150 } }, 100), true);
      assert.equal(await answersOneMore({ http: { maxConnectionsPerAddress: 0 } }, 100), true);
    });

    it('takes 0 connections at once as no limit, not as none', async () => {
      assert.equal(
        await answersOneMore({ http: { maxConnections: 0, maxConnectionsPerAddress: 0 } }, 2),
        true,
      );
    });

    it('admits the load of npm run bench -- --connections 150 on the serve the bench starts', async () => {
      const cwd = mkdtempSync(path.join(tmpdir(), 'aa-oidc-bench-caps-'));
      try {
        const benchConfig = loadConfig({
          env: { ...connectionCapsFor(150), AA_OIDC_SECRET_KEY: 'k'.repeat(40) },
          cwd,
        });
        assert.equal(await answersOneMore({ http: benchConfig.http }, 150), true);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });

    it('does not count the connections of a trusted proxy against one address', async () => {
      const server = await startServer(
        { trustProxy: true, trustedProxies: '127.0.0.1' },
        { limits: { maxConnections: 10, maxConnectionsPerAddress: 2, keepAliveTimeoutMs: 60_000 } },
      );
      try {
        const closed = await beyondTheLimit(server, 2);
        assert.equal(closed.closedByServer, true);
        assert.match(closed.answer, /^HTTP\/1\.1 200 /);
      } finally {
        await server.close();
      }
    });
  });
});
