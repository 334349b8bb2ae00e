import ipaddr from 'ipaddr.js';

/**
 * Judges one IP address for the back-channel logout SSRF gate: is it public unicast, and if not, what is it.
 * Pure: no I/O, no DNS. The judgement is always on the parsed address (ipaddr.js), never on its
 * text, and addresses that embed an IPv4 address (IPv4-mapped, IPv4-compatible, SIIT, 6to4,
 * Teredo, NAT64) are judged by what they embed.
 */

type IPv4 = ipaddr.IPv4;
type IPv6 = ipaddr.IPv6;
type IP = IPv4 | IPv6;

/** Why an address is not public unicast. */
export type AddressClass =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'cloud_metadata'
  | 'cgnat'
  | 'unique_local'
  | 'site_local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking'
  | 'ietf_protocol'
  | 'special_purpose'
  | 'deprecated_embedding'
  | 'scoped';

/** How an IPv6 address carries an IPv4 address. */
export type Embedding =
  | 'ipv4_mapped'
  | 'ipv4_compatible'
  | 'ipv4_translated'
  | '6to4'
  | 'teredo_server'
  | 'teredo_client'
  | 'nat64'
  | 'nat64_local_use';

export type AddressVerdict =
  | {
      kind: 'public';
      /** The parsed address, canonical text. */
      address: string;
      /** Where a connection goes: the embedded IPv4 for an IPv4-mapped address, else `address`. */
      connectAddress: string;
      family: 4 | 6;
    }
  | {
      kind: 'non_public';
      address: string;
      connectAddress: string;
      family: 4 | 6;
      addressClass: AddressClass;
      /** The registry range that matched, e.g. `127.0.0.0/8`. */
      range: string;
      /** Set when the class comes from an embedded IPv4 address. */
      embedded?: { embedding: Embedding; address: string };
      /** One line for an operator: `10.0.0.1 is a private address (10.0.0.0/8)`. */
      reason: string;
    }
  | { kind: 'unparseable'; input: string; reason: string };

/** The verdict on something that did parse as an address. */
export type JudgedAddress = Exclude<AddressVerdict, { kind: 'unparseable' }>;
type NonPublic = Extract<AddressVerdict, { kind: 'non_public' }>;

/** Classes that `logout.allowPrivateTargets` (the development escape hatch) lets through. */
export const PRIVATE_TARGET_CLASSES: ReadonlySet<AddressClass> = new Set<AddressClass>([
  'loopback',
  'private',
  'cgnat',
  'link_local',
  'unique_local',
  'site_local',
]);

/**
 * Why `logout.allowPrivateTargets` keeps a non-public address refused, or undefined when it lets it
 * through: an address of a class it opens, written as itself or IPv4-mapped (a connection to which
 * goes to the IPv4 address itself). A 6to4, Teredo, NAT64, IPv4-compatible or SIIT address is judged
 * by the private address it embeds, but is not that address: a connection to it goes to a relay,
 * tunnel or translator, whichever the network has, and those forms are defined for global IPv4
 * addresses only (RFC 3056, RFC 4380, RFC 6052), so one embedding a private address is a way around
 * the gate, never where a development receiver listens.
 */
export function closedToPrivateTargets(verdict: NonPublic): string | undefined {
  if (!PRIVATE_TARGET_CLASSES.has(verdict.addressClass)) return verdict.reason;
  const embedded = verdict.embedded;
  if (embedded === undefined || embedded.embedding === 'ipv4_mapped') return undefined;
  return (
    `${verdict.reason}; logout.allowPrivateTargets opens ${embedded.address} itself, not its ` +
    `${EMBEDDING_WORDS[embedded.embedding]} form, which a connection reaches through a relay or translator`
  );
}

const CLASS_WORDS: Readonly<Record<AddressClass, string>> = {
  unspecified: 'the unspecified address',
  loopback: 'a loopback address',
  private: 'a private address (RFC 1918)',
  link_local: 'a link-local address',
  cloud_metadata: 'a cloud metadata service address',
  cgnat: 'a carrier-grade NAT address (RFC 6598)',
  unique_local: 'a unique-local address (RFC 4193)',
  site_local: 'a deprecated site-local address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address',
  documentation: 'a documentation address',
  benchmarking: 'a benchmarking address (RFC 2544)',
  ietf_protocol: 'an IETF protocol assignment',
  special_purpose: 'a special-purpose address that is not globally reachable',
  deprecated_embedding: 'a deprecated IPv4-embedding form that is not routable',
  scoped: 'a scoped address (it carries a zone index)',
};

type RangeRow = readonly [cidr: string, addressClass: AddressClass];

/** IANA IPv4 Special-Purpose Address Registry, most specific first. */
const IPV4_RANGES: readonly RangeRow[] = [
  ['169.254.169.254/32', 'cloud_metadata'], // AWS, GCP, Azure, OpenStack instance metadata
  ['168.63.129.16/32', 'cloud_metadata'], // Azure WireServer: public space, answered inside every VM
  // Inside ranges that `allowPrivateTargets` opens (link-local, CGNAT): listed so that it never opens them.
  ['169.254.170.2/32', 'cloud_metadata'], // AWS ECS task metadata and credentials
  ['169.254.170.23/32', 'cloud_metadata'], // AWS EKS Pod Identity Agent credentials
  ['100.100.100.200/32', 'cloud_metadata'], // Alibaba Cloud instance metadata
  ['169.254.42.42/32', 'cloud_metadata'], // Scaleway instance metadata
  ['169.254.0.23/32', 'cloud_metadata'], // Tencent Cloud instance metadata (metadata.tencentyun.com)
  ['255.255.255.255/32', 'broadcast'],
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link_local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'ietf_protocol'],
  ['192.0.2.0/24', 'documentation'],
  ['192.31.196.0/24', 'special_purpose'], // AS112-v4
  ['192.52.193.0/24', 'special_purpose'], // AMT
  ['192.88.99.0/24', 'reserved'], // deprecated 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['192.175.48.0/24', 'special_purpose'], // AS112 direct delegation
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
];

/** IANA IPv6 Special-Purpose Address Registry (embedding prefixes are handled before this). */
const IPV6_RANGES: readonly RangeRow[] = [
  ['fd00:ec2::254/128', 'cloud_metadata'], // AWS instance metadata over IPv6
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  // Instance metadata over IPv6, in unique-local space (which `allowPrivateTargets` opens).
  ['fd00:ec2::23/128', 'cloud_metadata'], // AWS EKS Pod Identity Agent
  ['fd20:ce::254/128', 'cloud_metadata'], // Google Compute Engine
  ['fd00:c1::a9fe:a9fe/128', 'cloud_metadata'], // Oracle Cloud Infrastructure
  ['fd00:a9fe:a9fe::1/128', 'cloud_metadata'], // Akamai (Linode)
  ['fd00:42::42/128', 'cloud_metadata'], // Scaleway
  ['100::/64', 'reserved'], // discard-only
  ['2001:2::/48', 'benchmarking'],
  ['2001::/23', 'ietf_protocol'],
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation'],
  ['fc00::/7', 'unique_local'],
  ['fe80::/10', 'link_local'],
  ['fec0::/10', 'site_local'],
  ['ff00::/8', 'multicast'],
];

/** Everything outside global unicast 2000::/3 is not a public address. */
const IPV6_GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR('2000::/3');

const parsedV4 = IPV4_RANGES.map(([cidr, addressClass]) => ({
  cidr,
  addressClass,
  range: ipaddr.IPv4.parseCIDR(cidr),
}));
const parsedV6 = IPV6_RANGES.map(([cidr, addressClass]) => ({
  cidr,
  addressClass,
  range: ipaddr.IPv6.parseCIDR(cidr),
}));

const cidr6 = (text: string) => ipaddr.IPv6.parseCIDR(text);
const EMBEDDING_PREFIXES = {
  ipv4_mapped: cidr6('::ffff:0:0/96'),
  ipv4_compatible: cidr6('::/96'),
  ipv4_translated: cidr6('::ffff:0:0:0/96'),
  nat64: cidr6('64:ff9b::/96'),
  nat64_local_use: cidr6('64:ff9b:1::/48'),
  sixToFour: cidr6('2002::/16'),
  teredo: cidr6('2001::/32'),
} as const;

/**
 * Parses an address as text: dotted, legacy IPv4 forms (`0x7f.1`, `2130706433`, `0177.0.0.1`,
 * `127.1`), IPv6 with or without brackets. Undefined when it is not an IP address at all.
 */
export function parseAddress(text: string): IP | undefined {
  let candidate = text.trim();
  if (candidate.startsWith('[') && candidate.endsWith(']')) candidate = candidate.slice(1, -1);
  // ipaddr.js reads `::a.b.c.d` as IPv4-mapped; it is IPv4-compatible (::/96), which is also how
  // glibc prints such an address. Spelled out in full, ipaddr.js reads it correctly.
  const compatible = /^::(\d{1,3}(?:\.\d{1,3}){3})(%.*)?$/.exec(candidate);
  if (compatible) candidate = `0:0:0:0:0:0:${compatible[1]}${compatible[2] ?? ''}`;
  try {
    return ipaddr.parse(candidate);
  } catch {
    return undefined;
  }
}

/** Judges an address given as text (as a resolver or a URL host gives it). */
export function judgeAddressText(text: string): AddressVerdict {
  const address = parseAddress(text);
  if (address === undefined)
    return { kind: 'unparseable', input: text, reason: `${JSON.stringify(text)} is not an IP address` };
  return judgeAddress(address);
}

/** Judges a parsed address. */
export function judgeAddress(address: IP): JudgedAddress {
  return address.kind() === 'ipv4' ? judgeIPv4(address as IPv4) : judgeIPv6(address as IPv6);
}

function judgeIPv4(address: IPv4): JudgedAddress {
  const text = address.toString();
  for (const row of parsedV4) {
    if (address.match(row.range)) {
      return nonPublic(text, text, 4, row.addressClass, row.cidr);
    }
  }
  return { kind: 'public', address: text, connectAddress: text, family: 4 };
}

function judgeIPv6(address: IPv6): JudgedAddress {
  const text = address.toString();
  if (address.zoneId !== undefined) {
    return nonPublic(text, text, 6, 'scoped', `%${address.zoneId}`);
  }
  for (const row of parsedV6.slice(0, 3)) {
    // The cloud metadata, unspecified and loopback addresses first: `::` and `::1` also sit in ::/96.
    if (address.match(row.range)) return nonPublic(text, text, 6, row.addressClass, row.cidr);
  }

  const last32 = ipv4From(address.parts[6]!, address.parts[7]!);
  if (address.match(EMBEDDING_PREFIXES.ipv4_mapped)) {
    // The connection goes to the IPv4 address itself: judge and pin that.
    const inner = judgeIPv4(last32);
    return inner.kind === 'public'
      ? { kind: 'public', address: text, connectAddress: inner.address, family: 4 }
      : embeddedVerdict(text, inner.address, 4, 'ipv4_mapped', inner);
  }
  if (address.match(EMBEDDING_PREFIXES.ipv4_compatible)) {
    return embeddedOrDeprecated(text, 'ipv4_compatible', last32, '::/96');
  }
  if (address.match(EMBEDDING_PREFIXES.ipv4_translated)) {
    return embeddedOrDeprecated(text, 'ipv4_translated', last32, '::ffff:0:0:0/96');
  }
  if (address.match(EMBEDDING_PREFIXES.nat64)) {
    return embeddedOrPublic(text, [['nat64', last32]]);
  }
  if (address.match(EMBEDDING_PREFIXES.nat64_local_use)) {
    const inner = judgeIPv4(last32);
    if (inner.kind !== 'public') return embeddedVerdict(text, text, 6, 'nat64_local_use', inner);
    return nonPublic(text, text, 6, 'special_purpose', '64:ff9b:1::/48');
  }
  if (address.match(EMBEDDING_PREFIXES.sixToFour)) {
    return embeddedOrPublic(text, [['6to4', ipv4From(address.parts[1]!, address.parts[2]!)]]);
  }
  if (address.match(EMBEDDING_PREFIXES.teredo)) {
    // RFC 4380: the server's IPv4 in bits 32–63, the client's IPv4 in the last 32 bits, inverted.
    const server = ipv4From(address.parts[2]!, address.parts[3]!);
    const client = ipv4From(address.parts[6]! ^ 0xffff, address.parts[7]! ^ 0xffff);
    return embeddedOrPublic(text, [
      ['teredo_server', server],
      ['teredo_client', client],
    ]);
  }

  for (const row of parsedV6.slice(3)) {
    if (address.match(row.range)) return nonPublic(text, text, 6, row.addressClass, row.cidr);
  }
  if (!address.match(IPV6_GLOBAL_UNICAST)) return nonPublic(text, text, 6, 'reserved', 'outside 2000::/3');
  return { kind: 'public', address: text, connectAddress: text, family: 6 };
}

function ipv4From(high: number, low: number): IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

/** Public only when every embedded IPv4 address is public; the connection keeps the IPv6 address. */
function embeddedOrPublic(text: string, embedded: ReadonlyArray<readonly [Embedding, IPv4]>): JudgedAddress {
  for (const [embedding, ipv4] of embedded) {
    const inner = judgeIPv4(ipv4);
    if (inner.kind !== 'public') return embeddedVerdict(text, text, 6, embedding, inner);
  }
  return { kind: 'public', address: text, connectAddress: text, family: 6 };
}

/** IPv4-compatible and SIIT forms: judged by what they embed, and never public themselves. */
function embeddedOrDeprecated(text: string, embedding: Embedding, ipv4: IPv4, range: string): JudgedAddress {
  const inner = judgeIPv4(ipv4);
  if (inner.kind !== 'public') return embeddedVerdict(text, text, 6, embedding, inner);
  return nonPublic(text, text, 6, 'deprecated_embedding', range);
}

const EMBEDDING_WORDS: Readonly<Record<Embedding, string>> = {
  ipv4_mapped: 'IPv4-mapped IPv6',
  ipv4_compatible: 'IPv4-compatible IPv6',
  ipv4_translated: 'IPv4-translated IPv6',
  '6to4': '6to4',
  teredo_server: 'Teredo server',
  teredo_client: 'Teredo client',
  nat64: 'NAT64',
  nat64_local_use: 'local-use NAT64',
};

function embeddedVerdict(
  text: string,
  connectAddress: string,
  family: 4 | 6,
  embedding: Embedding,
  inner: NonPublic,
): JudgedAddress {
  return {
    kind: 'non_public',
    address: text,
    connectAddress,
    family,
    addressClass: inner.addressClass,
    range: inner.range,
    embedded: { embedding, address: inner.address },
    reason: `${text} embeds ${inner.address} (${EMBEDDING_WORDS[embedding]}), ${CLASS_WORDS[inner.addressClass]} (${inner.range})`,
  };
}

function nonPublic(
  text: string,
  connectAddress: string,
  family: 4 | 6,
  addressClass: AddressClass,
  range: string,
): NonPublic {
  return {
    kind: 'non_public',
    address: text,
    connectAddress,
    family,
    addressClass,
    range,
    reason: `${text} is ${CLASS_WORDS[addressClass]} (${range})`,
  };
}
