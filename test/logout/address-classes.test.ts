import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AddressClass,
  closedToPrivateTargets,
  judgeAddressText,
  parseAddress,
  PRIVATE_TARGET_CLASSES,
} from '../../src/logout/ssrf/address-classes.ts';

describe('address judgement (pure)', () => {
  const nonPublic: ReadonlyArray<readonly [string, AddressClass]> = [
    ['127.0.0.1', 'loopback'],
    ['127.1', 'loopback'],
    ['0x7f.1', 'loopback'],
    ['2130706433', 'loopback'],
    ['0177.0.0.1', 'loopback'],
    ['10.255.255.255', 'private'],
    ['172.16.0.0', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.255.255', 'private'],
    ['100.64.0.0', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['169.254.169.254', 'cloud_metadata'],
    ['169.254.0.1', 'link_local'],
    ['169.254.170.2', 'cloud_metadata'],
    ['169.254.170.23', 'cloud_metadata'],
    ['169.254.170.3', 'link_local'],
    ['100.100.100.200', 'cloud_metadata'],
    ['100.100.100.201', 'cgnat'],
    ['169.254.42.42', 'cloud_metadata'],
    ['169.254.0.23', 'cloud_metadata'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.255', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.0', 'reserved'],
    ['192.0.0.8', 'ietf_protocol'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.1', 'documentation'],
    ['203.0.113.1', 'documentation'],
    ['198.18.0.0', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['192.88.99.1', 'reserved'],
    ['192.31.196.1', 'special_purpose'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['::7f00:1', 'loopback'],
    ['::ffff:0:a00:1', 'private'],
    ['2002:a00:1::', 'private'],
    ['2001:0:5db8:d70e:0:0:80ff:fffe', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b:1::7f00:1', 'loopback'],
    ['fe80::1', 'link_local'],
    ['febf:ffff::1', 'link_local'],
    ['fe80::1%eth0', 'scoped'],
    ['fec0::1', 'site_local'],
    ['fc00::', 'unique_local'],
    ['fdff:ffff::1', 'unique_local'],
    ['fd00:ec2::254', 'cloud_metadata'],
    ['fd00:ec2::23', 'cloud_metadata'],
    ['fd00:ec2::24', 'unique_local'],
    ['fd20:ce::254', 'cloud_metadata'],
    ['fd20:ce::253', 'unique_local'],
    ['fd00:c1::a9fe:a9fe', 'cloud_metadata'],
    ['fd00:a9fe:a9fe::1', 'cloud_metadata'],
    ['fd00:42::42', 'cloud_metadata'],
    ['ff02::1', 'multicast'],
    ['2001:db8::', 'documentation'],
    ['3fff::1', 'documentation'],
    ['2001:2::1', 'benchmarking'],
    ['2001:10::1', 'ietf_protocol'],
    ['100::', 'reserved'],
    ['5f00::1', 'reserved'],
    ['::2', 'unspecified'],
    ['::5db8:d70e', 'deprecated_embedding'],
  ];
  for (const [text, addressClass] of nonPublic) {
    it(`${text} is ${addressClass}`, () => {
      const verdict = judgeAddressText(text);
      assert.equal(verdict.kind, 'non_public', JSON.stringify(verdict));
      if (verdict.kind === 'non_public') assert.equal(verdict.addressClass, addressClass);
    });
  }

  for (const text of [
    '1.1.1.1',
    '8.8.8.8',
    '93.184.215.14',
    '172.15.255.255',
    '100.63.255.255',
    '100.128.0.0',
  ]) {
    it(`${text} is public`, () => {
      assert.deepEqual(judgeAddressText(text), {
        kind: 'public',
        address: text,
        connectAddress: text,
        family: 4,
      });
    });
  }
  for (const text of [
    '2606:4700:4700::1111',
    '2a00:1450:4001:80b::200e',
    '2001:4860:4860::8888',
    '3ffe::1',
  ]) {
    it(`${text} is public`, () => {
      assert.equal(judgeAddressText(text).kind, 'public');
    });
  }

  it('judges 255.255.255.254 as reserved (240/4), not broadcast', () => {
    const verdict = judgeAddressText('255.255.255.254');
    assert.equal(verdict.kind === 'non_public' ? verdict.addressClass : verdict.kind, 'reserved');
  });

  it('pins an IPv4-mapped public address to the IPv4 address itself', () => {
    assert.deepEqual(judgeAddressText('::ffff:93.184.215.14'), {
      kind: 'public',
      address: '::ffff:5db8:d70e',
      connectAddress: '93.184.215.14',
      family: 4,
    });
  });

  it('names the embedding and the embedded address in the reason', () => {
    const verdict = judgeAddressText('2001:0:5db8:d70e::80ff:fffe');
    assert.equal(verdict.kind, 'non_public');
    if (verdict.kind !== 'non_public') return;
    assert.deepEqual(verdict.embedded, { embedding: 'teredo_client', address: '127.0.0.1' });
    assert.equal(
      verdict.reason,
      '2001:0:5db8:d70e::80ff:fffe embeds 127.0.0.1 (Teredo client), a loopback address (127.0.0.0/8)',
    );
  });

  it('reads ::a.b.c.d as IPv4-compatible (::/96), not IPv4-mapped', () => {
    assert.equal(parseAddress('::10.0.0.1')?.toString(), '::a00:1');
    assert.equal(parseAddress('::ffff:10.0.0.1')?.toString(), '::ffff:a00:1');
  });

  for (const text of ['', 'example.com', '1.2.3.4.5', '256.1.1.1', '::g', 'localhost', '1.2.3.4 ']) {
    it(`does not take ${JSON.stringify(text)} for an address`, () => {
      if (text === '1.2.3.4 ') {
        // Surrounding whitespace is trimmed; the address inside is judged.
        assert.equal(judgeAddressText(text).kind, 'public');
        return;
      }
      assert.equal(judgeAddressText(text).kind, 'unparseable');
    });
  }

  const closedToHatch = (text: string) => {
    const verdict = judgeAddressText(text);
    assert.equal(verdict.kind, 'non_public', text);
    return verdict.kind === 'non_public' ? closedToPrivateTargets(verdict) : 'public';
  };

  it('opens to the escape hatch a private address as itself or IPv4-mapped, never its 6to4, Teredo, NAT64, IPv4-compatible or SIIT form', () => {
    for (const text of ['10.0.0.1', '127.0.0.1', '::1', 'fd12::1', '::ffff:10.0.0.1', '::ffff:7f00:1']) {
      assert.equal(closedToHatch(text), undefined, text);
    }
    assert.equal(
      closedToHatch('2002:a00:1::'),
      '2002:a00:1:: embeds 10.0.0.1 (6to4), a private address (RFC 1918) (10.0.0.0/8); ' +
        'logout.allowPrivateTargets opens 10.0.0.1 itself, not its 6to4 form, which a connection ' +
        'reaches through a relay or translator',
    );
    for (const [text, form] of [
      ['2001:0:5db8:d70e::f5ff:fefe', 'Teredo client'],
      ['2001:0:a00:1::a247:28f1', 'Teredo server'],
      ['64:ff9b::a00:1', 'NAT64'],
      ['64:ff9b:1::a00:1', 'local-use NAT64'],
      ['::a00:1', 'IPv4-compatible IPv6'],
      ['::ffff:0:a00:1', 'IPv4-translated IPv6'],
    ] as const) {
      assert.match(closedToHatch(text) ?? '', new RegExp(`itself, not its ${form} form`), text);
    }
    // A class the hatch never opens stays refused for what it is.
    assert.equal(
      closedToHatch('169.254.169.254'),
      '169.254.169.254 is a cloud metadata service address (169.254.169.254/32)',
    );
  });

  it('lets the escape hatch through only loopback, private, CGNAT, link-local, unique-local and site-local', () => {
    assert.deepEqual(
      [...PRIVATE_TARGET_CLASSES].sort(),
      ['cgnat', 'link_local', 'loopback', 'private', 'site_local', 'unique_local'].sort(),
    );
  });
});
