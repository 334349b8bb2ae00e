import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  createDeliveryPools,
  createDirectConnector,
  deliverLogoutToken,
  type DeliveryOutcome,
} from '../../src/logout/http-delivery.ts';
import { backchannelTargetCheck } from '../../src/logout/ssrf/application-check.ts';
import { checkBackchannelTarget, type GateOptions } from '../../src/logout/ssrf/target-gate.ts';
import { createServices } from '../../src/services.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { eventually } from '../helpers/eventually.ts';
import {
  type Answer,
  guardedConnector,
  loopbackOnly,
  PUBLIC_V4,
  PUBLIC_V6,
  startReceiver,
  tableResolver,
  v4,
  v6,
} from './helpers.ts';

/**
 * A hostile sweep of the back-channel SSRF gate and of the pinned delivery, beyond the hostile table
 * (hostile-targets.ts, which target-gate.test.ts and http-delivery.test.ts run at write and at
 * delivery): URL spellings the write path refuses but WHATWG parsing accepts, resolver answers in
 * odd forms, IDN and trailing-dot names, kept-alive connections when a name's answer changes, a
 * header slow-loris, TLS to an IP literal, and the escape hatch telling that it is on.
 *
 * Names resolve only through `tableResolver`; connections go only to loopback listeners started here,
 * through `guardedConnector` (which maps a public test address to one and refuses anything else) or
 * the real connector behind `loopbackOnly`. The resolver API hands the gate addresses only: CNAMEs
 * are followed by the system's resolver (getaddrinfo) and only the final addresses are judged, which
 * is what a connection would use, so there is no CNAME behaviour of the gate's own to probe.
 */

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzc3JmIn0.c2lnbmF0dXJl';
/** Another public unicast address (judged, never contacted: the connector maps it to loopback). */
const OTHER_PUBLIC_V4 = '93.184.215.15';
const FAR_LIMIT_MS = 10_000;

const gateOptions = (table: Record<string, Answer>, overrides: Partial<GateOptions> = {}) => {
  const resolver = tableResolver(table);
  const options: GateOptions = {
    mode: 'production',
    allowPrivateTargets: false,
    resolver,
    dnsTimeoutMs: 200,
    ...overrides,
  };
  return { options, resolver };
};

function expectOutcome<K extends DeliveryOutcome['outcome']>(
  outcome: DeliveryOutcome,
  kind: K,
): Extract<DeliveryOutcome, { outcome: K }> {
  assert.equal(outcome.outcome, kind, JSON.stringify(outcome));
  return outcome as Extract<DeliveryOutcome, { outcome: K }>;
}

describe('SSRF gate: URL spellings', () => {
  const table: Record<string, Answer> = {
    'rp.public.test': [v4(PUBLIC_V4)],
    'rp.public.test.': [v4(PUBLIC_V4)],
    'xn--bcher-kva.test': [v4(PUBLIC_V4)],
  };

  // What the write path (aa-oidc app, the admin UI) refuses before any lookup, though WHATWG parsing
  // would accept it. At delivery the gate judges the host WHATWG parsed, which is also the origin the
  // request goes to and the only host it resolves: a stored URI can only ever be one that passed here.
  const refusedAtWrite: ReadonlyArray<readonly [string, RegExp]> = [
    ['https://@rp.public.test/bcl', /must not contain credentials/],
    ['https://user:pass@rp.public.test/bcl', /must not contain credentials/],
    ['https://rp.public.test/bcl#x', /must not contain a fragment/],
    ['https://rp.public.test\\@127.0.0.1/bcl', /backslashes/],
    ['https:\\\\rp.public.test/bcl', /backslashes/],
    [' https://rp.public.test/bcl', /whitespace/],
    ['https://rp.public.test\t/bcl', /whitespace/],
    ['https://rp.public.test/b cl', /whitespace/],
    ['https:rp.public.test/bcl', /expected scheme:\/\/host\/path/],
    ['https:/rp.public.test/bcl', /expected scheme:\/\/host\/path/],
    ['https://rp.public.test:65536/bcl', /expected scheme:\/\/host\/path/],
    ['https://rp.public.test:0/bcl', /port 0/],
    ['https://[fe80::1%25eth0]/bcl', /expected scheme:\/\/host\/path/],
    ['https://[fe80::1%eth0]/bcl', /expected scheme:\/\/host\/path/],
    ['https://rp.public.test%00/bcl', /expected scheme:\/\/host\/path/],
    ['ftp://rp.public.test/bcl', /must use https/],
    ['javascript://rp.public.test/bcl', /must use https/],
    ['http://rp.public.test/bcl', /https in production/],
  ];
  for (const [uri, reason] of refusedAtWrite) {
    it(`refuses ${JSON.stringify(uri)} at write, before any lookup`, async () => {
      const { options, resolver } = gateOptions(table);
      const verdict = await backchannelTargetCheck(options)(uri);
      assert.equal(verdict.ok, false);
      assert.match((verdict as { reason: string }).reason, reason);
      assert.deepEqual(resolver.lookups, []);
    });
  }

  it('a zone index in a URL is no address at delivery either: WHATWG has no IPv6 zone ids', async () => {
    const { options, resolver } = gateOptions(table);
    for (const uri of ['https://[fe80::1%25eth0]/bcl', 'https://[fe80::1%eth0]/bcl']) {
      const verdict = await checkBackchannelTarget(uri, options);
      assert.deepEqual(verdict, { ok: false, reason: 'invalid_uri', detail: 'is not an absolute URI' });
    }
    assert.deepEqual(resolver.lookups, []);
  });

  it('judges what WHATWG parsed, for a backslash or a stray @ that only the write path refuses', async () => {
    const { options } = gateOptions(table);
    // `\` is `/` in a special URL: the host is rp.public.test, resolved and pinned like any other.
    const backslash = await checkBackchannelTarget('https://rp.public.test\\@127.0.0.1/bcl', options);
    assert.ok(backslash.ok);
    assert.equal(backslash.host, 'rp.public.test');
    assert.deepEqual(
      backslash.addresses.map((checked) => checked.address),
      [PUBLIC_V4],
    );
    const reversed = await checkBackchannelTarget('https://127.0.0.1\\@rp.public.test/bcl', options);
    assert.equal(reversed.ok, false);
    assert.equal((reversed as { addressClass?: string }).addressClass, 'loopback');
    // An empty userinfo carries nothing; the origin the request goes to has none.
    const emptyUserinfo = await checkBackchannelTarget('https://@rp.public.test/bcl', options);
    assert.ok(emptyUserinfo.ok);
    assert.equal(emptyUserinfo.url.origin, 'https://rp.public.test');
  });

  it('reads an uppercase scheme and the default port spelled out as the plain URI', async () => {
    const { options } = gateOptions(table);
    for (const uri of [
      'HTTPS://RP.PUBLIC.TEST/bcl',
      'https://rp.public.test:443/bcl',
      'https://rp.public.test:00443/bcl',
    ]) {
      const verdict = await checkBackchannelTarget(uri, options);
      assert.ok(verdict.ok, uri);
      assert.equal(verdict.url.origin, 'https://rp.public.test');
      assert.equal(verdict.port, 443);
      assert.ok((await backchannelTargetCheck(options)(uri)).ok, uri);
    }
    const explicit = await checkBackchannelTarget('https://rp.public.test:80/bcl', options);
    assert.ok(explicit.ok);
    assert.equal(explicit.port, 80);
  });

  it('resolves an IDN as its punycode and a fully qualified name with its dot', async () => {
    const { options, resolver } = gateOptions(table);
    const idn = await checkBackchannelTarget('https://bücher.test/bcl', options);
    assert.ok(idn.ok);
    assert.equal(idn.host, 'xn--bcher-kva.test');
    const dotted = await checkBackchannelTarget('https://rp.public.test./bcl', options);
    assert.ok(dotted.ok);
    assert.deepEqual(resolver.lookups, ['xn--bcher-kva.test', 'rp.public.test.']);
  });

  for (const host of ['.', '..', 'a..b.test', '.rp.public.test', 'rp.public.test..']) {
    it(`refuses the host ${JSON.stringify(host)} (an empty label) as invalid_uri, without a lookup`, async () => {
      const { options, resolver } = gateOptions(table);
      const uri = `https://${host}/bcl`;
      const detail = `has the host ${JSON.stringify(host)}, with an empty label: a host name is labels joined by single dots`;
      assert.deepEqual(await checkBackchannelTarget(uri, options), {
        ok: false,
        reason: 'invalid_uri',
        detail,
      });
      assert.deepEqual(await backchannelTargetCheck(options)(uri), {
        ok: false,
        reason: `is refused by the SSRF gate (invalid_uri): ${detail}`,
      });
      assert.deepEqual(resolver.lookups, []);
    });
  }

  // RFC 1035's limits, counted on the punycode WHATWG gives. Each name resolves (to a public address)
  // in the table: a refusal is the gate's own, before any lookup.
  const label63 = 'a'.repeat(63);
  const name253 = `${label63}.${label63}.${label63}.${'b'.repeat(61)}`;
  const name254 = `${name253}b`;
  const label64 = `${'a'.repeat(64)}.public.test`;
  const idnLabel66 = `${'ü'.repeat(60)}.test`;
  const idnLabel66Ascii = new URL(`https://${idnLabel66}/`).hostname;
  const longNames: Record<string, Answer> = {
    [name253]: [v4(PUBLIC_V4)],
    [`${name253}.`]: [v4(PUBLIC_V4)],
    [name254]: [v4(PUBLIC_V4)],
    [`${label63}.public.test`]: [v4(PUBLIC_V4)],
    [label64]: [v4(PUBLIC_V4)],
    [idnLabel66Ascii]: [v4(PUBLIC_V4)],
  };

  const tooLong: ReadonlyArray<readonly [string, string, string]> = [
    [
      'a name of 254 characters',
      name254,
      `has a host name of 254 characters, where DNS allows at most 253: "${name254.slice(0, 40)}…${name254.slice(-20)}"`,
    ],
    [
      'a name of 254 characters and a trailing dot',
      `${name254}.`,
      `has a host name of 254 characters, where DNS allows at most 253: "${name254.slice(0, 40)}…${name254.slice(-19)}."`,
    ],
    [
      'a label of 64 characters',
      label64,
      `has a label of 64 characters in its host, where DNS allows at most 63: "${label64.slice(0, 40)}…${label64.slice(-20)}"`,
    ],
    [
      'an IDN label of 60 letters, 66 characters as punycode',
      idnLabel66,
      `has a label of 66 characters in its host, where DNS allows at most 63: "${idnLabel66Ascii.slice(0, 40)}…${idnLabel66Ascii.slice(-20)}"`,
    ],
  ];
  for (const [what, host, detail] of tooLong) {
    it(`refuses ${what} as invalid_uri, without a lookup, at write and at delivery`, async () => {
      const { options, resolver } = gateOptions(longNames);
      const uri = `https://${host}/bcl`;
      assert.deepEqual(await checkBackchannelTarget(uri, options), {
        ok: false,
        reason: 'invalid_uri',
        detail,
      });
      assert.deepEqual(await backchannelTargetCheck(options)(uri), {
        ok: false,
        reason: `is refused by the SSRF gate (invalid_uri): ${detail}`,
      });
      // At delivery (a URI stored before the gate refused it) it is final at once, as an empty label is.
      const guarded = guardedConnector();
      const outcome = await deliverLogoutToken({
        url: uri,
        logoutToken: TOKEN,
        gate: options,
        connector: guarded.connector,
      });
      const refused = expectOutcome(outcome, 'unsafe_target_ip');
      assert.equal(refused.gateReason, 'invalid_uri');
      assert.equal(refused.detail, detail);
      assert.deepEqual(guarded.attempts, []);
      assert.deepEqual(resolver.lookups, []);
    });
  }

  it('draws the line at 253 characters (254 with a trailing dot) and 63 a label: those are looked up', async () => {
    const { options, resolver } = gateOptions(longNames);
    const verdicts = new Map<string, boolean>();
    for (const host of [name253, `${name253}.`, name254, `${label63}.public.test`, label64]) {
      verdicts.set(host, (await checkBackchannelTarget(`https://${host}/bcl`, options)).ok);
    }
    assert.deepEqual([...verdicts.values()], [true, true, false, true, false]);
    assert.deepEqual(resolver.lookups, [name253, `${name253}.`, `${label63}.public.test`]);
  });
});

describe('SSRF gate: resolver answers in odd forms', () => {
  // ipaddr.js reads the legacy IPv4 forms getaddrinfo never gives; whatever the text, the address it
  // parses to is what is judged and what the connection is pinned to (its canonical form).
  const table: Record<string, Answer> = {
    'decimal.test': [v4('2130706433')],
    'hex.test': [v4('0x7f.1')],
    'bracketed.test': [v6('[::1]')],
    'padded.test': [v4(' 10.0.0.1 ')],
    'public-decimal.test': [v4('1572394766')],
    'twice.test': [v6(`::ffff:${PUBLIC_V4}`), v4(PUBLIC_V4), v6(PUBLIC_V6)],
    'cidr.test': [v4('93.184.215.14/8')],
    'zoned-v4.test': [v4(`${PUBLIC_V4}%eth0`)],
    'zoned-v6.test': [v6(`${PUBLIC_V6}%eth0`)],
    'bad-octal.test': [v4('093.184.215.14')],
    'mislabelled.test': [{ address: '10.0.0.1', family: 6 }],
  };

  const refused: ReadonlyArray<readonly [string, string | undefined, RegExp]> = [
    ['decimal.test', 'loopback', /127\.0\.0\.1 is a loopback address/],
    ['hex.test', 'loopback', /127\.0\.0\.1 is a loopback address/],
    ['bracketed.test', 'loopback', /::1 is a loopback address/],
    ['padded.test', 'private', /10\.0\.0\.1 is a private address/],
    ['mislabelled.test', 'private', /10\.0\.0\.1 is a private address/],
    ['zoned-v6.test', 'scoped', /carries a zone index/],
    ['cidr.test', undefined, /resolves to "93\.184\.215\.14\/8", which is not an IP address/],
    ['zoned-v4.test', undefined, /which is not an IP address/],
    ['bad-octal.test', undefined, /which is not an IP address/],
  ];
  for (const [name, addressClass, detail] of refused) {
    it(`refuses ${name} (${JSON.stringify(table[name])})`, async () => {
      const { options } = gateOptions(table);
      const verdict = await checkBackchannelTarget(`https://${name}/bcl`, options);
      assert.equal(verdict.ok, false);
      const refusal = verdict as { reason: string; detail: string; addressClass?: string };
      assert.equal(refusal.reason, 'unsafe_target_ip');
      assert.equal(refusal.addressClass, addressClass);
      assert.match(refusal.detail, detail);
    });
  }

  it('pins a public answer in a legacy form to the canonical address it parses to', async () => {
    const { options } = gateOptions(table);
    const verdict = await checkBackchannelTarget('https://public-decimal.test/bcl', options);
    assert.ok(verdict.ok);
    assert.deepEqual(
      verdict.addresses.map((checked) => [checked.address, checked.family]),
      [[PUBLIC_V4, 4]],
    );
  });

  it('tries an address once, however many spellings of it the resolver gave', async () => {
    const { options } = gateOptions(table);
    const verdict = await checkBackchannelTarget('https://twice.test/bcl', options);
    assert.ok(verdict.ok);
    assert.deepEqual(
      verdict.addresses.map((checked) => checked.address),
      [PUBLIC_V4, PUBLIC_V6],
    );
  });

  it('with private targets allowed, still refuses a scoped answer (a zone picks an interface)', async () => {
    const { options } = gateOptions(
      { 'scoped.test': [v6('fe80::1%eth0')], 'lan.test': [v6('fe80::1')] },
      { allowPrivateTargets: true },
    );
    const scoped = await checkBackchannelTarget('https://scoped.test/bcl', options);
    assert.equal(scoped.ok, false);
    assert.equal((scoped as { addressClass?: string }).addressClass, 'scoped');
    assert.ok((await checkBackchannelTarget('https://lan.test/bcl', options)).ok);
  });
});

describe("kept-alive connections follow the gate's answer of each delivery", () => {
  const refusals: unknown[] = [];
  afterEach(() =>
    assert.deepEqual(refusals.splice(0), [], 'a delivery tried to connect outside the mapping'),
  );

  it('reuses a connection only for the address this delivery checked: never after the name rebinds', async () => {
    const hosts: string[] = [];
    const first = await startReceiver((request, response) => {
      hosts.push(`first ${request.headers.host}`);
      response.end();
    });
    const second = await startReceiver((request, response) => {
      hosts.push(`second ${request.headers.host}`);
      response.end();
    });
    const guarded = guardedConnector({ [PUBLIC_V4]: first.port, [OTHER_PUBLIC_V4]: second.port });
    const pools = createDeliveryPools({
      connector: guarded.connector,
      connectTimeoutMs: FAR_LIMIT_MS,
      requestTimeoutMs: FAR_LIMIT_MS,
    });
    const { options } = gateOptions(
      {
        'rebind.public.test': {
          sequence: [[v4(PUBLIC_V4)], [v4('10.0.0.1')], [v4(OTHER_PUBLIC_V4)], [v4(PUBLIC_V4)]],
        },
      },
      { mode: 'development' },
    );
    const deliver = () =>
      deliverLogoutToken({
        url: 'http://rebind.public.test/bcl',
        logoutToken: TOKEN,
        gate: options,
        pools,
        requestTimeoutMs: FAR_LIMIT_MS,
      });
    try {
      expectOutcome(await deliver(), 'success');
      await new Promise((resolve) => setImmediate(resolve));
      // The kept-alive connection to the first address is open: the rebound name must not use it.
      const refused = expectOutcome(await deliver(), 'unsafe_target_ip');
      assert.equal(refused.addressClass, 'private');
      expectOutcome(await deliver(), 'success');
      await new Promise((resolve) => setImmediate(resolve));
      // Back at the first address: its connection, which the gate approved again, is reused.
      expectOutcome(await deliver(), 'success');
      assert.deepEqual(
        guarded.attempts.map((target) => target.address),
        [PUBLIC_V4, OTHER_PUBLIC_V4],
      );
      assert.deepEqual(hosts, [
        'first rebind.public.test',
        'second rebind.public.test',
        'first rebind.public.test',
      ]);
      refusals.push(...guarded.refused);
    } finally {
      await pools.close();
      await first.close();
      await second.close();
    }
  });

  it('does not share a connection between two names on one address (Host and TLS name are per name)', async () => {
    const receiver = await startReceiver((_request, response) => response.end());
    const guarded = guardedConnector({ [PUBLIC_V4]: receiver.port });
    const pools = createDeliveryPools({
      connector: guarded.connector,
      connectTimeoutMs: FAR_LIMIT_MS,
      requestTimeoutMs: FAR_LIMIT_MS,
    });
    const { options } = gateOptions(
      { 'a.public.test': [v4(PUBLIC_V4)], 'b.public.test': [v4(PUBLIC_V4)] },
      { mode: 'development' },
    );
    const deliver = (host: string) =>
      deliverLogoutToken({ url: `http://${host}/bcl`, logoutToken: TOKEN, gate: options, pools });
    try {
      expectOutcome(await deliver('a.public.test'), 'success');
      await new Promise((resolve) => setImmediate(resolve));
      expectOutcome(await deliver('b.public.test'), 'success');
      await new Promise((resolve) => setImmediate(resolve));
      expectOutcome(await deliver('a.public.test'), 'success');
      assert.equal(guarded.attempts.length, 2, 'one connection per name, each reused by its own name');
      assert.deepEqual(
        receiver.requests.map((request) => request.headers.host),
        ['a.public.test', 'b.public.test', 'a.public.test'],
      );
      refusals.push(...guarded.refused);
    } finally {
      await pools.close();
      await receiver.close();
    }
  });

  for (const status of [301, 302, 307, 308]) {
    it(`through a worker's pools, does not follow a ${status} to a private address`, async () => {
      const receiver = await startReceiver((_request, response) => {
        response.writeHead(status, { location: 'http://169.254.169.254/latest/meta-data/' });
        response.end();
      });
      const guarded = guardedConnector({ [PUBLIC_V4]: receiver.port });
      const pools = createDeliveryPools({
        connector: guarded.connector,
        connectTimeoutMs: FAR_LIMIT_MS,
        requestTimeoutMs: FAR_LIMIT_MS,
      });
      const { options, resolver } = gateOptions({}, { mode: 'development' });
      try {
        const outcome = await deliverLogoutToken({
          url: `http://${PUBLIC_V4}/bcl`,
          logoutToken: TOKEN,
          gate: options,
          pools,
        });
        assert.equal(expectOutcome(outcome, 'redirect_blocked').status, status);
        assert.equal(receiver.requests.length, 1);
        assert.deepEqual(
          guarded.attempts.map((target) => target.address),
          [PUBLIC_V4],
        );
        assert.deepEqual(resolver.lookups, []);
        refusals.push(...guarded.refused);
      } finally {
        await pools.close();
        await receiver.close();
      }
    });
  }
});

describe('the escape hatch opens a private address, not a transition form that embeds it', () => {
  it('delivers to [::ffff:127.0.0.1] on 127.0.0.1; refuses its 6to4, Teredo, NAT64 and IPv4-compatible forms unconnected', async () => {
    const receiver = await startReceiver((_request, response) => response.end());
    const guarded = loopbackOnly(createDirectConnector());
    const { options, resolver } = gateOptions({}, { mode: 'development', allowPrivateTargets: true });
    const deliver = (host: string) =>
      deliverLogoutToken({
        url: `http://${host}:${receiver.port}/bcl`,
        logoutToken: TOKEN,
        gate: options,
        connector: guarded.connector,
        connectTimeoutMs: FAR_LIMIT_MS,
        requestTimeoutMs: FAR_LIMIT_MS,
      });
    try {
      expectOutcome(await deliver('[::ffff:127.0.0.1]'), 'success');
      for (const [host, form] of [
        ['[2002:7f00:1::1]', '6to4'],
        ['[2001:0:5db8:d70e::80ff:fffe]', 'Teredo client'],
        ['[64:ff9b::7f00:1]', 'NAT64'],
        ['[::127.0.0.1]', 'IPv4-compatible IPv6'],
      ] as const) {
        const refused = expectOutcome(await deliver(host), 'unsafe_target_ip');
        assert.equal(refused.gateReason, 'unsafe_target_ip');
        assert.equal(refused.addressClass, 'loopback');
        assert.ok(
          refused.detail.endsWith(
            `; logout.allowPrivateTargets opens 127.0.0.1 itself, not its ${form} form, ` +
              'which a connection reaches through a relay or translator',
          ),
          refused.detail,
        );
      }
      assert.equal(receiver.requests.length, 1);
      assert.deepEqual(guarded.refused, []);
      assert.deepEqual(resolver.lookups, []);
    } finally {
      await receiver.close();
    }
  });
});

describe('a receiver that trickles its response head (slow-loris)', () => {
  for (const pooled of [false, true]) {
    it(`ends the attempt at the request timeout and closes the connection${pooled ? " (a worker's pools)" : ''}`, async () => {
      const sockets: net.Socket[] = [];
      const closed: boolean[] = [];
      const server = net.createServer((socket) => {
        const index = sockets.push(socket) - 1;
        closed.push(false);
        socket.on('error', () => undefined);
        socket.once('close', () => (closed[index] = true));
        socket.once('data', () => {
          socket.write('HTTP/1.1 200 OK\r\nX-Slow: ');
          // One header byte at a time, never the end of the head: every chunk is progress.
          const drip = setInterval(() => {
            if (socket.destroyed) clearInterval(drip);
            else socket.write('a');
          }, 20);
          socket.once('close', () => clearInterval(drip));
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as net.AddressInfo).port;
      const guarded = guardedConnector({ [PUBLIC_V4]: port });
      const requestTimeoutMs = 300;
      const pools = pooled
        ? createDeliveryPools({
            connector: guarded.connector,
            connectTimeoutMs: FAR_LIMIT_MS,
            requestTimeoutMs,
          })
        : undefined;
      try {
        const outcome = await deliverLogoutToken({
          url: `http://${PUBLIC_V4}/bcl`,
          logoutToken: TOKEN,
          gate: gateOptions({}, { mode: 'development' }).options,
          connector: guarded.connector,
          requestTimeoutMs,
          connectTimeoutMs: FAR_LIMIT_MS,
          ...(pools ? { pools } : {}),
        });
        const failed = expectOutcome(outcome, 'network_error');
        assert.equal(failed.failure, 'request_timeout');
        assert.equal(failed.detail, `no response within ${requestTimeoutMs} ms`);
        await eventually(() => closed[0] === true, 'the trickling connection is closed');
        assert.deepEqual(guarded.refused, []);
      } finally {
        await pools?.close();
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  }
});

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const noOpenssl = openssl.error ? 'openssl is not installed (needed to make a test certificate)' : false;

describe('https to an IP literal', { skip: noOpenssl }, () => {
  let directory: string;
  const servers: Record<'ip' | 'name', { cert: Buffer; port: number; server: https.Server }> = {} as never;
  const servernames: Array<string | false | null> = [];

  async function serve(subjectAltName: string) {
    const key = path.join(directory, `${subjectAltName.replace(/\W/g, '')}-key.pem`);
    const certFile = path.join(directory, `${subjectAltName.replace(/\W/g, '')}-cert.pem`);
    const made = spawnSync(
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
        key,
        '-out',
        certFile,
        '-days',
        '1',
        '-subj',
        '/CN=aa-oidc test receiver',
        '-addext',
        `subjectAltName=${subjectAltName}`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    const cert = readFileSync(certFile);
    const server = https.createServer({ key: readFileSync(key), cert }, (request, response) => {
      servernames.push((request.socket as TLSSocket).servername);
      request.resume();
      request.on('end', () => response.end());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { cert, port: (server.address() as net.AddressInfo).port, server };
  }

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'aa-oidc-test-ssrf-tls-'));
    servers.ip = await serve('IP:127.0.0.1');
    servers.name = await serve('DNS:rp.public.test');
  });
  after(async () => {
    for (const { server } of Object.values(servers)) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    rmSync(directory, { recursive: true, force: true });
  });

  async function deliverTo(which: 'ip' | 'name') {
    const guarded = loopbackOnly(createDirectConnector({ ca: servers[which].cert }));
    const outcome = await deliverLogoutToken({
      url: `https://127.0.0.1:${servers[which].port}/bcl`,
      logoutToken: TOKEN,
      gate: gateOptions({}, { allowPrivateTargets: true }).options,
      connector: guarded.connector,
      connectTimeoutMs: FAR_LIMIT_MS,
      requestTimeoutMs: FAR_LIMIT_MS,
    });
    assert.deepEqual(guarded.refused, []);
    return outcome;
  }

  it('checks the certificate against the IP address, sending no server name', async () => {
    expectOutcome(await deliverTo('ip'), 'success');
    assert.deepEqual(servernames, [false]);
  });

  it("fails TLS on a certificate that names a host but not the literal's address", async () => {
    const failed = expectOutcome(await deliverTo('name'), 'network_error');
    assert.equal(failed.failure, 'tls_failed');
    assert.equal(failed.detail, 'TLS failed (ERR_TLS_CERT_ALTNAME_INVALID)');
  });
});

describe(`logout.allowPrivateTargets is off by default and says when it is on (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database?.drop());

  async function warningsOfWorker(logout: Record<string, unknown>): Promise<string[]> {
    const lines: string[] = [];
    const destination = { write: (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)) };
    const config = testConfig(database, { logout });
    const services = await createServices(config, { migrate: true, logger: { destination, level: 'warn' } });
    try {
      // Started twice: said once.
      await services.logout.startWorker({ pollIntervalMs: 60_000 }).stop();
      await services.logout.startWorker({ pollIntervalMs: 60_000 }).stop();
    } finally {
      await services.close();
    }
    return lines
      .map((line) => JSON.parse(line) as { msg: string; level: number; allowPrivateTargets?: boolean })
      .filter((line) => line.msg.includes('allowPrivateTargets'))
      .map((line) => `${line.level} ${line.allowPrivateTargets} ${line.msg}`);
  }

  it('is off by default', () => {
    assert.equal(testConfig(database).logout.allowPrivateTargets, false);
  });

  it('warns once, when the worker starts, that deliveries may reach private addresses', async () => {
    assert.deepEqual(await warningsOfWorker({ allowPrivateTargets: true }), [
      '40 true back-channel logouts may be delivered to loopback, private, CGNAT, link-local and ' +
        'unique-local addresses: logout.allowPrivateTargets (AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS), ' +
        "the SSRF gate's development escape hatch, is on (cloud metadata addresses stay refused)",
    ]);
  });

  it('says nothing when it is off', async () => {
    assert.deepEqual(await warningsOfWorker({}), []);
  });
});
