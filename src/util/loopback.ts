import ipaddr from 'ipaddr.js';

/**
 * True when `host` names the loopback interface of whoever uses it: an address of 127.0.0.0/8 or
 * `::1`, also when written as an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, which the system sends
 * to 127.0.0.1), or `localhost` or a name under it (`app.localhost`: RFC 6761 §6.3 has resolvers
 * answer loopback for those, and browsers do). It takes a URL's `hostname` as WHATWG URL gives it
 * (IPv6 in brackets; IPv4 already in four decimal parts: `http://127.1/` has `127.0.0.1`) or a bare
 * address, and ignores a trailing dot (`localhost.`) and letter case. Judged on the parsed address
 * (ipaddr.js), never on its text. Pure: no DNS.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare.includes(':')) {
    // WHATWG URL's spelling first: ipaddr.js reads `::127.0.0.1` (IPv4-compatible, no loopback) as
    // IPv4-mapped. A zone (`fe80::1%eth0`) does not parse: no loopback address has one.
    const canonical = URL.parse(`http://[${bare}]/`)?.hostname.slice(1, -1);
    if (canonical === undefined || !ipaddr.IPv6.isValid(canonical)) return false;
    // `process` turns an IPv4-mapped address into the IPv4 address it carries.
    return ipaddr.process(canonical).range() === 'loopback';
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) return ipaddr.IPv4.parse(bare).range() === 'loopback';
  const name = bare.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}
