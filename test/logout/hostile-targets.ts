import type { AddressClass } from '../../src/logout/ssrf/address-classes.ts';
import type { GateRefusalReason } from '../../src/logout/ssrf/target-gate.ts';
import { type Answer, PUBLIC_V4, PUBLIC_V6, tableResolver, v4, v6 } from './helpers.ts';

/**
 * The back-channel logout SSRF table: every target here must be refused by the gate at write time and
 * at delivery, with the reason (and the address class) given. Names resolve only through
 * `hostileResolver()`; nothing here is ever contacted.
 */

export interface HostileTarget {
  what: string;
  uri: string;
  reason: GateRefusalReason;
  /** The class named in the refusal, for `unsafe_target_ip` on an address. */
  addressClass?: AddressClass;
}

const RESOLVER_TABLE: Record<string, Answer> = {
  'loopback.rp.test': [v4('127.0.0.1')],
  'loopback6.rp.test': [v6('::1')],
  'private10.rp.test': [v4('10.1.2.3')],
  'private172.rp.test': [v4('172.31.255.254')],
  'private192.rp.test': [v4('192.168.0.10')],
  'metadata.google.internal': [v4('169.254.169.254')],
  'metadata6.rp.test': [v6('fd00:ec2::254')],
  'linklocal.rp.test': [v4('169.254.10.20')],
  'linklocal6.rp.test': [v6('fe80::1')],
  'scoped.rp.test': [v6('fe80::1%eth0')],
  'ula.rp.test': [v6('fd12:3456:789a::1')],
  'mapped.rp.test': [v6('::ffff:192.168.0.1')],
  'compatible.rp.test': [v6('::127.0.0.1')],
  'nat64.rp.test': [v6('64:ff9b::a00:1')],
  '6to4.rp.test': [v6('2002:c0a8:101::1')],
  // Teredo client 10.0.1.1, stored inverted: 0a00:0101 ^ ffff:ffff = f5ff:fefe.
  'teredo.rp.test': [v6('2001:0:5db8:d70e::f5ff:fefe')],
  'cgnat.rp.test': [v4('100.72.10.20')],
  'alibaba-metadata.rp.test': [v4('100.100.100.200')],
  'ecs.rp.test': [v4('169.254.170.2')],
  'gce-metadata6.rp.test': [v6('fd20:ce::254')],
  'multicast.rp.test': [v4('239.255.255.250')],
  'multicast6.rp.test': [v6('ff05::c')],
  'broadcast.rp.test': [v4('255.255.255.255')],
  'zero.rp.test': [v4('0.0.0.0')],
  'unspecified6.rp.test': [v6('::')],
  'reserved.rp.test': [v4('240.1.2.3')],
  'documentation.rp.test': [v4('198.51.100.20')],
  'benchmark.rp.test': [v4('198.18.7.7')],
  'mixed.rp.test': [v4(PUBLIC_V4), v4('10.0.0.1')],
  'mixed6.rp.test': [v6(PUBLIC_V6), v6('::1')],
  'garbage.rp.test': [v4('not-an-address')],
  'nxdomain.rp.test': { throws: 'ENOTFOUND' },
  'servfail.rp.test': { throws: 'ESERVFAIL' },
  'slow.rp.test': 'hang',
  'empty.rp.test': [],
  // Public answers: these pass.
  'rp.public.test': [v4(PUBLIC_V4)],
  'rp6.public.test': [v6(PUBLIC_V6)],
  'rp-dual.public.test': [v4(PUBLIC_V4), v6(PUBLIC_V6)],
};

/** A fresh resolver over the table above (unknown names fail as ENOTFOUND). */
export const hostileResolver = () => tableResolver(RESOLVER_TABLE);

/** Short enough for the hanging resolver to make tests quick. */
export const TEST_DNS_TIMEOUT_MS = 100;

const unsafe = (what: string, uri: string, addressClass: AddressClass): HostileTarget => ({
  what,
  uri,
  reason: 'unsafe_target_ip',
  addressClass,
});
const unresolved = (what: string, uri: string): HostileTarget => ({
  what,
  uri,
  reason: 'dns_resolve_failed',
});

export const HOSTILE_TARGETS: readonly HostileTarget[] = [
  // IPv4 literals in every spelling; WHATWG parsing must not change the judgement.
  unsafe('dotted loopback', 'http://127.0.0.1/bcl', 'loopback'),
  unsafe('decimal loopback', 'http://2130706433/bcl', 'loopback'),
  unsafe('octal loopback', 'http://0177.0.0.1/bcl', 'loopback'),
  unsafe('hex loopback', 'http://0x7f.1/bcl', 'loopback'),
  unsafe('single hex number', 'http://0x7f000001/bcl', 'loopback'),
  unsafe('single octal number', 'http://017700000001/bcl', 'loopback'),
  unsafe('short-form loopback', 'http://127.1/bcl', 'loopback'),
  unsafe('loopback with a trailing dot', 'http://127.0.0.1./bcl', 'loopback'),
  unsafe('loopback, other /8 address', 'http://127.255.0.9:8080/bcl', 'loopback'),
  unsafe('RFC 1918 10/8', 'http://10.0.0.1/bcl', 'private'),
  unsafe('RFC 1918 172.16/12', 'http://172.16.5.4/bcl', 'private'),
  unsafe('RFC 1918 192.168/16 in hex', 'http://0xc0.0xa8.0x01.0x01/bcl', 'private'),
  unsafe('CGNAT', 'http://100.64.0.1/bcl', 'cgnat'),
  unsafe('cloud metadata', 'http://169.254.169.254/latest/meta-data/', 'cloud_metadata'),
  unsafe('cloud metadata in decimal', 'http://2852039166/latest/meta-data/', 'cloud_metadata'),
  unsafe('Azure WireServer', 'http://168.63.129.16/machine', 'cloud_metadata'),
  unsafe('AWS ECS task credentials', 'http://169.254.170.2/v2/credentials/x', 'cloud_metadata'),
  unsafe('EKS Pod Identity Agent', 'http://169.254.170.23/v1/credentials', 'cloud_metadata'),
  unsafe('Alibaba Cloud metadata', 'http://100.100.100.200/latest/meta-data/', 'cloud_metadata'),
  unsafe('IPv4 link-local', 'http://169.254.1.1/bcl', 'link_local'),
  unsafe('multicast', 'http://224.0.0.1/bcl', 'multicast'),
  unsafe('broadcast', 'http://255.255.255.255/bcl', 'broadcast'),
  unsafe('0.0.0.0', 'http://0.0.0.0/bcl', 'unspecified'),
  unsafe('0 (short for 0.0.0.0)', 'http://0/bcl', 'unspecified'),
  unsafe('reserved 240/4', 'http://240.0.0.1/bcl', 'reserved'),
  unsafe('documentation 192.0.2/24', 'http://192.0.2.10/bcl', 'documentation'),
  unsafe('documentation 203.0.113/24', 'http://203.0.113.9/bcl', 'documentation'),
  unsafe('benchmarking 198.18/15', 'http://198.19.0.1/bcl', 'benchmarking'),
  unsafe('IETF protocol assignments 192.0.0/24', 'http://192.0.0.170/bcl', 'ietf_protocol'),
  // IPv6 literals.
  unsafe('[::]', 'http://[::]/bcl', 'unspecified'),
  unsafe('[::1]', 'http://[::1]/bcl', 'loopback'),
  unsafe('IPv4-mapped, dotted', 'http://[::ffff:127.0.0.1]/bcl', 'loopback'),
  unsafe('IPv4-mapped, hex', 'http://[::ffff:7f00:1]/bcl', 'loopback'),
  unsafe('IPv4-mapped, full form', 'http://[0:0:0:0:0:ffff:10.0.0.1]/bcl', 'private'),
  unsafe('IPv4-mapped metadata', 'http://[::ffff:a9fe:a9fe]/latest/meta-data/', 'cloud_metadata'),
  unsafe('IPv4-compatible, dotted', 'http://[::127.0.0.1]/bcl', 'loopback'),
  unsafe('IPv4-compatible, hex', 'http://[::7f00:1]/bcl', 'loopback'),
  unsafe('IPv4-compatible metadata', 'http://[::a9fe:a9fe]/bcl', 'cloud_metadata'),
  unsafe(
    'IPv4-compatible, public inside (not routable)',
    `http://[::${PUBLIC_V4}]/bcl`,
    'deprecated_embedding',
  ),
  unsafe('IPv4-translated (SIIT)', 'http://[::ffff:0:7f00:1]/bcl', 'loopback'),
  unsafe('6to4 loopback', 'http://[2002:7f00:1::1]/bcl', 'loopback'),
  unsafe('6to4 metadata', 'http://[2002:a9fe:a9fe::1]/bcl', 'cloud_metadata'),
  unsafe('Teredo, loopback client', 'http://[2001:0:5db8:d70e::80ff:fffe]/bcl', 'loopback'),
  unsafe('Teredo, metadata client', 'http://[2001:0:5db8:d70e::5601:5601]/bcl', 'cloud_metadata'),
  unsafe('Teredo, private server', 'http://[2001:0:a00:1::a247:28f1]/bcl', 'private'),
  unsafe('NAT64 loopback', 'http://[64:ff9b::7f00:1]/bcl', 'loopback'),
  unsafe('NAT64 metadata, dotted', 'http://[64:ff9b::169.254.169.254]/bcl', 'cloud_metadata'),
  unsafe('local-use NAT64, private inside', 'http://[64:ff9b:1::a00:1]/bcl', 'private'),
  unsafe('local-use NAT64, public inside', `http://[64:ff9b:1::5db8:d70e]/bcl`, 'special_purpose'),
  unsafe('IPv6 link-local', 'http://[fe80::1]/bcl', 'link_local'),
  unsafe('IPv6 metadata (AWS)', 'http://[fd00:ec2::254]/latest/meta-data/', 'cloud_metadata'),
  unsafe('EKS Pod Identity Agent over IPv6', 'http://[fd00:ec2::23]/v1/credentials', 'cloud_metadata'),
  unsafe('unique-local fc00::/7', 'http://[fc00::1]/bcl', 'unique_local'),
  unsafe('unique-local fd00::/8', 'http://[fd12:3456::1]/bcl', 'unique_local'),
  unsafe('site-local', 'http://[fec0::1]/bcl', 'site_local'),
  unsafe('IPv6 multicast', 'http://[ff02::1]/bcl', 'multicast'),
  unsafe('IPv6 documentation', 'http://[2001:db8::1]/bcl', 'documentation'),
  unsafe('IPv6 discard-only', 'http://[100::1]/bcl', 'reserved'),
  unsafe('IPv6 outside 2000::/3', 'http://[4000::1]/bcl', 'reserved'),
  // Names refused without resolving.
  unsafe('localhost', 'http://localhost/bcl', 'loopback'),
  unsafe('localhost.', 'http://localhost./bcl', 'loopback'),
  unsafe('LOCALHOST with a port', 'http://LOCALHOST:8080/bcl', 'loopback'),
  unsafe('a name under .localhost', 'http://rp.localhost/bcl', 'loopback'),
  // WHATWG host parsing (IDNA mapping, percent-decoding) happens before the judgement.
  unsafe('localhost in fullwidth letters', 'http://ｌｏｃａｌｈｏｓｔ/bcl', 'loopback'),
  unsafe('localhost percent-encoded', 'http://loc%61lhost/bcl', 'loopback'),
  unsafe('loopback in fullwidth digits', 'http://１２７.０.０.１/bcl', 'loopback'),
  unsafe('loopback percent-encoded', 'http://127%2e0%2e0%2e1/bcl', 'loopback'),
  // Names that resolve (through the injected resolver) to each hostile class.
  unsafe('a name resolving to loopback', 'http://loopback.rp.test/bcl', 'loopback'),
  unsafe('a name resolving to ::1', 'http://loopback6.rp.test/bcl', 'loopback'),
  unsafe('a name resolving to 10/8', 'http://private10.rp.test/bcl', 'private'),
  unsafe('a name resolving to 172.16/12', 'http://private172.rp.test/bcl', 'private'),
  unsafe('a name resolving to 192.168/16', 'http://private192.rp.test/bcl', 'private'),
  unsafe('metadata.google.internal', 'http://metadata.google.internal/computeMetadata/v1/', 'cloud_metadata'),
  unsafe('a name resolving to fd00:ec2::254', 'http://metadata6.rp.test/bcl', 'cloud_metadata'),
  unsafe('a name resolving to link-local', 'http://linklocal.rp.test/bcl', 'link_local'),
  unsafe('a name resolving to fe80::1', 'http://linklocal6.rp.test/bcl', 'link_local'),
  unsafe('a name resolving to a scoped address', 'http://scoped.rp.test/bcl', 'scoped'),
  unsafe('a name resolving to unique-local', 'http://ula.rp.test/bcl', 'unique_local'),
  unsafe('a name resolving to IPv4-mapped private', 'http://mapped.rp.test/bcl', 'private'),
  unsafe('a name resolving to IPv4-compatible loopback', 'http://compatible.rp.test/bcl', 'loopback'),
  unsafe('a name resolving to NAT64 private', 'http://nat64.rp.test/bcl', 'private'),
  unsafe('a name resolving to 6to4 private', 'http://6to4.rp.test/bcl', 'private'),
  unsafe('a name resolving to Teredo private client', 'http://teredo.rp.test/bcl', 'private'),
  unsafe('a name resolving to CGNAT', 'http://cgnat.rp.test/bcl', 'cgnat'),
  unsafe(
    'a name resolving to Alibaba Cloud metadata',
    'http://alibaba-metadata.rp.test/bcl',
    'cloud_metadata',
  ),
  unsafe(
    'a name resolving to AWS ECS task credentials',
    'http://ecs.rp.test/v2/credentials/x',
    'cloud_metadata',
  ),
  unsafe('a name resolving to multicast', 'http://multicast.rp.test/bcl', 'multicast'),
  unsafe('a name resolving to IPv6 multicast', 'http://multicast6.rp.test/bcl', 'multicast'),
  unsafe('a name resolving to broadcast', 'http://broadcast.rp.test/bcl', 'broadcast'),
  unsafe('a name resolving to 0.0.0.0', 'http://zero.rp.test/bcl', 'unspecified'),
  unsafe('a name resolving to ::', 'http://unspecified6.rp.test/bcl', 'unspecified'),
  unsafe('a name resolving to 240/4', 'http://reserved.rp.test/bcl', 'reserved'),
  unsafe('a name resolving to documentation', 'http://documentation.rp.test/bcl', 'documentation'),
  unsafe('a name resolving to benchmarking', 'http://benchmark.rp.test/bcl', 'benchmarking'),
  unsafe('a name with public and private answers', 'http://mixed.rp.test/bcl', 'private'),
  unsafe('a name with public and loopback IPv6 answers', 'http://mixed6.rp.test/bcl', 'loopback'),
  {
    what: 'a name whose answer is not an address',
    uri: 'http://garbage.rp.test/bcl',
    reason: 'unsafe_target_ip',
  },
  // Resolution failures fail closed.
  unresolved('a name that does not exist', 'http://nxdomain.rp.test/bcl'),
  unresolved('a resolver that throws', 'http://servfail.rp.test/bcl'),
  unresolved('a resolver that times out', 'http://slow.rp.test/bcl'),
  unresolved('a name with no addresses', 'http://empty.rp.test/bcl'),
];

/** Targets the gate lets through (in development mode, private targets not allowed). */
export const PUBLIC_TARGETS: ReadonlyArray<{ what: string; uri: string; addresses: string[] }> = [
  { what: 'a public IPv4 literal', uri: `http://${PUBLIC_V4}/bcl`, addresses: [PUBLIC_V4] },
  { what: 'a public IPv6 literal', uri: `http://[${PUBLIC_V6}]/bcl`, addresses: [PUBLIC_V6] },
  {
    what: 'a name resolving to a public IPv4 address',
    uri: 'https://rp.public.test/bcl',
    addresses: [PUBLIC_V4],
  },
  {
    what: 'a name resolving to a public IPv6 address',
    uri: 'https://rp6.public.test/bcl',
    addresses: [PUBLIC_V6],
  },
  {
    what: 'a name with two public answers',
    uri: 'https://rp-dual.public.test:8443/bcl?x=1',
    addresses: [PUBLIC_V4, PUBLIC_V6],
  },
  {
    what: 'IPv4-mapped public (pinned to the IPv4 address)',
    uri: `http://[::ffff:${PUBLIC_V4}]/bcl`,
    addresses: [PUBLIC_V4],
  },
  {
    what: 'NAT64 of a public address',
    uri: 'http://[64:ff9b::5db8:d70e]/bcl',
    addresses: ['64:ff9b::5db8:d70e'],
  },
  {
    what: '6to4 of a public address',
    uri: 'http://[2002:5db8:d70e::1]/bcl',
    addresses: ['2002:5db8:d70e::1'],
  },
  {
    what: 'Teredo with public server and client',
    uri: 'http://[2001:0:5db8:d70e::a247:28f1]/bcl',
    addresses: ['2001:0:5db8:d70e::a247:28f1'],
  },
];
