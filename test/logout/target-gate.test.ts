import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backchannelTargetCheck } from '../../src/logout/ssrf/application-check.ts';
import { checkBackchannelTarget, type GateOptions } from '../../src/logout/ssrf/target-gate.ts';
import { PUBLIC_V4, tableResolver, v4, v6 } from './helpers.ts';
import { HOSTILE_TARGETS, hostileResolver, PUBLIC_TARGETS, TEST_DNS_TIMEOUT_MS } from './hostile-targets.ts';

const development = (overrides: Partial<GateOptions> = {}): GateOptions => ({
  mode: 'development',
  allowPrivateTargets: false,
  resolver: hostileResolver(),
  dnsTimeoutMs: TEST_DNS_TIMEOUT_MS,
  ...overrides,
});

describe('SSRF gate: the hostile table', () => {
  it('has at least 40 hostile targets', () => {
    assert.ok(HOSTILE_TARGETS.length >= 40, `only ${HOSTILE_TARGETS.length}`);
  });

  for (const target of HOSTILE_TARGETS) {
    it(`refuses ${target.what} (${target.uri}) with ${target.reason}`, async () => {
      const verdict = await checkBackchannelTarget(target.uri, development());
      assert.equal(verdict.ok, false, `accepted ${target.uri}`);
      if (verdict.ok) return;
      assert.equal(verdict.reason, target.reason, verdict.detail);
      assert.equal(verdict.addressClass, target.addressClass, verdict.detail);
      assert.ok(verdict.detail.length > 0);
    });
  }

  for (const target of HOSTILE_TARGETS) {
    it(`refuses ${target.what} through the application write check`, async () => {
      const check = backchannelTargetCheck(development());
      const verdict = await check(target.uri);
      assert.equal(verdict.ok, false);
      if (!verdict.ok)
        assert.match(verdict.reason, new RegExp(`^is refused by the SSRF gate \\(${target.reason}\\): `));
    });
  }
});

describe('SSRF gate: what passes', () => {
  for (const target of PUBLIC_TARGETS) {
    it(`accepts ${target.what}`, async () => {
      const verdict = await checkBackchannelTarget(target.uri, development());
      assert.ok(verdict.ok, verdict.ok ? '' : verdict.detail);
      assert.deepEqual(
        verdict.addresses.map((address) => address.address),
        target.addresses,
      );
    });
  }

  it('returns the host, port and whether the host was a literal', async () => {
    const named = await checkBackchannelTarget('https://rp-dual.public.test:8443/bcl?x=1', development());
    assert.ok(named.ok);
    assert.equal(named.host, 'rp-dual.public.test');
    assert.equal(named.port, 8443);
    assert.equal(named.literal, false);
    const literal = await checkBackchannelTarget(`https://${PUBLIC_V4}/bcl`, development());
    assert.ok(literal.ok);
    assert.equal(literal.port, 443);
    assert.equal(literal.literal, true);
  });

  it('judges literal IP hosts without asking the resolver', async () => {
    const resolver = tableResolver({});
    await checkBackchannelTarget('http://2130706433/bcl', development({ resolver }));
    await checkBackchannelTarget(`http://${PUBLIC_V4}/bcl`, development({ resolver }));
    await checkBackchannelTarget('http://[::ffff:7f00:1]/bcl', development({ resolver }));
    await checkBackchannelTarget('http://localhost./bcl', development({ resolver }));
    assert.deepEqual(resolver.lookups, []);
  });
});

describe('SSRF gate: scheme and form', () => {
  it('requires https in production and allows http in development', async () => {
    const production = await checkBackchannelTarget(
      'http://rp.public.test/bcl',
      development({ mode: 'production' }),
    );
    assert.deepEqual(production.ok ? null : production.reason, 'scheme_not_allowed');
    const https = await checkBackchannelTarget(
      'https://rp.public.test/bcl',
      development({ mode: 'production' }),
    );
    assert.ok(https.ok);
    assert.ok((await checkBackchannelTarget('http://rp.public.test/bcl', development())).ok);
  });

  for (const [uri, reason] of [
    ['ftp://rp.public.test/bcl', 'scheme_not_allowed'],
    ['file:///etc/passwd', 'scheme_not_allowed'],
    ['gopher://rp.public.test/', 'scheme_not_allowed'],
    ['not a uri', 'invalid_uri'],
    ['/bcl', 'invalid_uri'],
    ['https://user:pass@rp.public.test/bcl', 'invalid_uri'],
    ['http://1.2.3.4.5/bcl', 'invalid_uri'],
    ['http://rp.public.test:0/bcl', 'invalid_uri'],
    ['http://rp.public.test:65536/bcl', 'invalid_uri'],
    ['http://[fe80::1%25eth0]/bcl', 'invalid_uri'],
    [`https://${PUBLIC_V4}:0/bcl`, 'invalid_uri'],
  ] as const) {
    it(`refuses ${uri} with ${reason}`, async () => {
      const verdict = await checkBackchannelTarget(uri, development());
      assert.equal(verdict.ok ? null : verdict.reason, reason);
    });
  }

  it('refuses port 0 at write time, naming it, without a lookup', async () => {
    const resolver = tableResolver({ 'rp.public.test': [v4(PUBLIC_V4)] });
    const verdict = await backchannelTargetCheck(development({ resolver }))('https://rp.public.test:0/bcl');
    assert.deepEqual(verdict, {
      ok: false,
      reason: 'is refused by the SSRF gate (invalid_uri): has port 0, which no server listens on',
    });
    assert.deepEqual(resolver.lookups, []);
  });

  it('the application check runs the syntactic check first (no lookup for a fragment)', async () => {
    const resolver = tableResolver({ 'rp.public.test': [v4(PUBLIC_V4)] });
    const verdict = await backchannelTargetCheck(development({ resolver }))(
      'https://rp.public.test/bcl#frag',
    );
    assert.deepEqual(verdict, { ok: false, reason: 'must not contain a fragment (#…)' });
    assert.deepEqual(resolver.lookups, []);
    assert.deepEqual(await backchannelTargetCheck(development({ resolver }))('https://rp.public.test/bcl'), {
      ok: true,
    });
  });
});

describe('SSRF gate: DNS is bounded and fails closed', () => {
  it('gives up on a hanging resolver after dnsTimeoutMs', async () => {
    const started = performance.now();
    const verdict = await checkBackchannelTarget(
      'https://slow.rp.test/bcl',
      development({ dnsTimeoutMs: 150 }),
    );
    const took = performance.now() - started;
    assert.equal(verdict.ok ? null : verdict.reason, 'dns_resolve_failed');
    assert.ok(took >= 140 && took < 1000, `took ${took} ms`);
    assert.match(verdict.ok ? '' : verdict.detail, /did not resolve within 150 ms/);
  });

  it('names the resolver error code, not its message', async () => {
    const resolver = async () => {
      throw Object.assign(new Error('secret-ish internal detail'), { code: 'EAI_AGAIN' });
    };
    const verdict = await checkBackchannelTarget('https://rp.example/bcl', development({ resolver }));
    assert.equal(verdict.ok, false);
    if (!verdict.ok) {
      assert.equal(verdict.reason, 'dns_resolve_failed');
      assert.equal(verdict.detail, 'rp.example did not resolve (EAI_AGAIN)');
    }
  });

  it('refuses a resolver that returns something other than a list', async () => {
    const resolver = (async () => undefined) as unknown as GateOptions['resolver'];
    const verdict = await checkBackchannelTarget('https://rp.example/bcl', development({ resolver }));
    assert.equal(verdict.ok ? null : verdict.reason, 'dns_resolve_failed');
  });
});

describe('SSRF gate: logout.allowPrivateTargets (development escape hatch)', () => {
  const allowing = (resolver = hostileResolver()) => development({ allowPrivateTargets: true, resolver });

  for (const uri of [
    'http://127.0.0.1:8080/bcl',
    'http://[::1]/bcl',
    'http://10.0.0.1/bcl',
    'http://100.64.0.1/bcl',
    'http://[fd12::1]/bcl',
    'http://private192.rp.test/bcl',
    'http://mixed.rp.test/bcl',
  ]) {
    it(`lets ${uri} through`, async () => {
      const verdict = await checkBackchannelTarget(uri, allowing());
      assert.ok(verdict.ok, verdict.ok ? '' : verdict.detail);
    });
  }

  it('resolves localhost through the resolver instead of refusing it', async () => {
    const resolver = tableResolver({ localhost: [v4('127.0.0.1'), v6('::1')] });
    const verdict = await checkBackchannelTarget('http://localhost:3000/bcl', allowing(resolver));
    assert.ok(verdict.ok);
    assert.deepEqual(
      verdict.addresses.map((address) => address.address),
      ['127.0.0.1', '::1'],
    );
    assert.deepEqual(resolver.lookups, ['localhost']);
  });

  for (const [what, uri, reason] of [
    ['cloud metadata', 'http://169.254.169.254/', 'unsafe_target_ip'],
    ['cloud metadata by name', 'http://metadata.google.internal/', 'unsafe_target_ip'],
    ['0.0.0.0', 'http://0.0.0.0/bcl', 'unsafe_target_ip'],
    ['multicast', 'http://224.0.0.1/bcl', 'unsafe_target_ip'],
    ['broadcast', 'http://255.255.255.255/bcl', 'unsafe_target_ip'],
    ['a name that does not resolve', 'http://nxdomain.rp.test/bcl', 'dns_resolve_failed'],
    ['a resolver that times out', 'http://slow.rp.test/bcl', 'dns_resolve_failed'],
  ] as const) {
    it(`still refuses ${what}`, async () => {
      const verdict = await checkBackchannelTarget(uri, allowing());
      assert.equal(verdict.ok ? null : verdict.reason, reason);
    });
  }

  // Judged by the private address they embed, but not that address: a connection goes to a relay,
  // tunnel or translator. IPv4-mapped is the address itself (the connection goes to the IPv4 address).
  for (const [what, uri, addressClass, embedded] of [
    ['6to4 of a private address', 'http://[2002:a00:1::1]/bcl', 'private', '10.0.0.1'],
    ['6to4 of loopback', 'http://[2002:7f00:1::1]/bcl', 'loopback', '127.0.0.1'],
    ['6to4 of link-local', 'http://[2002:a9fe:101::1]/bcl', 'link_local', '169.254.1.1'],
    ['6to4 of CGNAT', 'http://[2002:6440:1::1]/bcl', 'cgnat', '100.64.0.1'],
    ['a Teredo client in private space', 'http://[2001:0:5db8:d70e::f5ff:fefe]/bcl', 'private', '10.0.1.1'],
    ['a Teredo server in private space', 'http://[2001:0:a00:1::a247:28f1]/bcl', 'private', '10.0.0.1'],
    // Judged by its server first: the metadata client behind it was never looked at.
    [
      'a Teredo private server with a metadata client',
      'http://[2001:0:a00:1::5601:5601]/bcl',
      'private',
      '10.0.0.1',
    ],
    ['NAT64 of a private address', 'http://[64:ff9b::a00:1]/bcl', 'private', '10.0.0.1'],
    ['local-use NAT64 of a private address', 'http://[64:ff9b:1::a00:1]/bcl', 'private', '10.0.0.1'],
    ['IPv4-compatible loopback', 'http://[::7f00:1]/bcl', 'loopback', '127.0.0.1'],
    ['IPv4-translated (SIIT) private', 'http://[::ffff:0:a00:1]/bcl', 'private', '10.0.0.1'],
    ['a name resolving to 6to4 private', 'http://6to4.rp.test/bcl', 'private', '192.168.1.1'],
    ['a name resolving to a Teredo private client', 'http://teredo.rp.test/bcl', 'private', '10.0.1.1'],
    ['a name resolving to NAT64 private', 'http://nat64.rp.test/bcl', 'private', '10.0.0.1'],
  ] as const) {
    it(`still refuses ${what}, naming the address it opens instead`, async () => {
      const verdict = await checkBackchannelTarget(uri, allowing());
      assert.equal(verdict.ok, false, `accepted ${uri}`);
      if (verdict.ok) return;
      assert.equal(verdict.reason, 'unsafe_target_ip');
      assert.equal(verdict.addressClass, addressClass);
      assert.match(
        verdict.detail,
        new RegExp(
          `; logout\\.allowPrivateTargets opens ${embedded.replaceAll('.', '\\.')} itself, not its `,
        ),
      );
    });
  }

  // Metadata and credential services that sit inside the ranges the escape hatch opens.
  for (const [what, uri] of [
    ['AWS ECS task metadata and credentials (link-local)', 'http://169.254.170.2/v2/credentials/x'],
    ['EKS Pod Identity Agent (link-local)', 'http://169.254.170.23/v1/credentials'],
    ['EKS Pod Identity Agent over IPv6 (unique-local)', 'http://[fd00:ec2::23]/v1/credentials'],
    ['Alibaba Cloud metadata (CGNAT)', 'http://100.100.100.200/latest/meta-data/'],
    ['Alibaba Cloud metadata, IPv4-mapped', 'http://[::ffff:100.100.100.200]/latest/meta-data/'],
    ['Scaleway metadata (link-local)', 'http://169.254.42.42/conf'],
    ['Tencent Cloud metadata (link-local)', 'http://169.254.0.23/latest/meta-data/'],
    ['Google Compute Engine metadata over IPv6 (unique-local)', 'http://[fd20:ce::254]/computeMetadata/v1/'],
    ['Oracle Cloud metadata over IPv6 (unique-local)', 'http://[fd00:c1::a9fe:a9fe]/opc/v2/instance/'],
    ['Akamai (Linode) metadata over IPv6 (unique-local)', 'http://[fd00:a9fe:a9fe::1]/v1/token'],
    ['Scaleway metadata over IPv6 (unique-local)', 'http://[fd00:42::42]/conf'],
    ['a name resolving to Google Compute Engine metadata over IPv6', 'http://gce-metadata6.rp.test/bcl'],
    ['a name resolving to the ECS credentials address', 'http://ecs.rp.test/bcl'],
  ] as const) {
    it(`still refuses ${what} as cloud metadata`, async () => {
      const verdict = await checkBackchannelTarget(uri, allowing());
      assert.equal(verdict.ok, false, `accepted ${uri}`);
      if (verdict.ok) return;
      assert.equal(verdict.reason, 'unsafe_target_ip');
      assert.equal(verdict.addressClass, 'cloud_metadata', verdict.detail);
    });
  }
});
