import ipaddr from 'ipaddr.js';

/**
 * The client a sign-in failure or a connection counts against: an IPv4 address as it is (also when
 * IPv4-mapped), an IPv6 address as its /64, which one subscriber usually holds whole.
 */
export function addressKey(address: string): string {
  const bare = address.replace(/%.*$/, '');
  if (!ipaddr.isValid(bare)) return address.slice(0, 64);
  const parsed = ipaddr.process(bare);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}
