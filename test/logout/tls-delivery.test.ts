import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import {
  type Connector,
  createDirectConnector,
  deliverLogoutToken,
  type DeliveryOutcome,
  directConnector,
  type PinnedTarget,
} from '../../src/logout/http-delivery.ts';
import { PUBLIC_V4, tableResolver, v4 } from './helpers.ts';

/**
 * https delivery through the real connector: the connection is pinned to the checked address
 * (mapped here to a loopback TLS receiver), while SNI and the certificate check use the URL's host.
 */

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0bHMifQ.c2ln';
const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const skip = openssl.error ? 'openssl is not installed (needed to make a test certificate)' : false;

describe('pinned https delivery', { skip }, () => {
  let directory: string;
  let cert: Buffer;
  let server: https.Server;
  let port: number;
  const seen: Array<{ servername: string | false | null; host: string | undefined; body: string }> = [];

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'aa-oidc-tls-'));
    const result = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        path.join(directory, 'key.pem'),
        '-out',
        path.join(directory, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=rp.public.test',
        '-addext',
        'subjectAltName=DNS:rp.public.test',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(result.status, 0, result.stderr);
    cert = readFileSync(path.join(directory, 'cert.pem'));
    server = https.createServer(
      { key: readFileSync(path.join(directory, 'key.pem')), cert },
      (request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          seen.push({
            servername: (request.socket as TLSSocket).servername,
            host: request.headers.host,
            body: Buffer.concat(chunks).toString('utf8'),
          });
          response.end();
        });
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(directory, { recursive: true, force: true });
  });

  /** The real connector, pointed at the loopback receiver instead of the (never contacted) public address. */
  function mapped(inner: Connector) {
    const attempts: PinnedTarget[] = [];
    const connector: Connector = (target, signal) => {
      attempts.push(target);
      if (target.address !== PUBLIC_V4) return Promise.reject(new Error(`refused ${target.address}`));
      return inner({ ...target, address: '127.0.0.1', port }, signal);
    };
    return { connector, attempts };
  }

  const resolver = () =>
    tableResolver({
      'rp.public.test': [v4(PUBLIC_V4)],
      'rp.public.test.': [v4(PUBLIC_V4)],
      'impostor.public.test': [v4(PUBLIC_V4)],
    });

  async function deliver(
    url: string,
    inner: Connector,
  ): Promise<{ outcome: DeliveryOutcome; attempts: PinnedTarget[] }> {
    const { connector, attempts } = mapped(inner);
    const outcome = await deliverLogoutToken({
      url,
      logoutToken: TOKEN,
      gate: { mode: 'production', allowPrivateTargets: false, resolver: resolver(), dnsTimeoutMs: 500 },
      connector,
      connectTimeoutMs: 2000,
      requestTimeoutMs: 4000,
    });
    return { outcome, attempts };
  }

  it('sends SNI and Host for the URL host while connecting to the checked address', async () => {
    seen.length = 0;
    const { outcome, attempts } = await deliver(
      'https://rp.public.test/bcl',
      createDirectConnector({ ca: cert }),
    );
    assert.equal(outcome.outcome, 'success', JSON.stringify(outcome));
    assert.deepEqual(attempts, [
      { address: PUBLIC_V4, family: 4, port: 443, protocol: 'https:', servername: 'rp.public.test' },
    ]);
    assert.deepEqual(seen, [
      { servername: 'rp.public.test', host: 'rp.public.test', body: `logout_token=${TOKEN}` },
    ]);
  });

  it('sends SNI without the trailing dot of a fully qualified host (RFC 6066), the Host header as written', async () => {
    seen.length = 0;
    const { outcome, attempts } = await deliver(
      'https://rp.public.test./bcl',
      createDirectConnector({ ca: cert }),
    );
    assert.equal(outcome.outcome, 'success', JSON.stringify(outcome));
    assert.equal(attempts[0]?.servername, 'rp.public.test');
    assert.deepEqual(seen, [
      { servername: 'rp.public.test', host: 'rp.public.test.', body: `logout_token=${TOKEN}` },
    ]);
  });

  it('fails TLS when the certificate does not name the URL host', async () => {
    seen.length = 0;
    const { outcome } = await deliver(
      'https://impostor.public.test/bcl',
      createDirectConnector({ ca: cert }),
    );
    assert.equal(outcome.outcome, 'network_error', JSON.stringify(outcome));
    if (outcome.outcome === 'network_error') {
      assert.equal(outcome.failure, 'tls_failed');
      assert.match(outcome.detail, /ERR_TLS_CERT_ALTNAME_INVALID/);
    }
    assert.deepEqual(seen, []);
  });

  it('fails TLS on a certificate the system does not trust', async () => {
    seen.length = 0;
    const { outcome } = await deliver('https://rp.public.test/bcl', directConnector);
    assert.equal(outcome.outcome, 'network_error', JSON.stringify(outcome));
    if (outcome.outcome === 'network_error') assert.equal(outcome.failure, 'tls_failed');
    assert.deepEqual(seen, []);
  });
});
