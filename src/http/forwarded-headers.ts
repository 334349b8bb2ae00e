import ipaddr from 'ipaddr.js';
import type Koa from 'koa';
import type { Config } from '../config/load.ts';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** The configured proxies as parsed ranges; a bare address is a range of one. */
function parseRanges(entries: readonly string[]): Range[] {
  return entries.map((entry) => {
    if (entry.includes('/')) {
      const [address, bits] = ipaddr.parseCIDR(entry);
      return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()
        ? [(address as ipaddr.IPv6).toIPv4Address(), Math.max(0, bits - 96)]
        : [address, bits];
    }
    const address = ipaddr.process(entry);
    return [address, address.kind() === 'ipv4' ? 32 : 128];
  });
}

/** The peers whose forwarded headers are believed: the `trustedProxies`, none without `trustProxy`. */
export function trustedProxyRanges(config: Pick<Config, 'trustProxy' | 'trustedProxies'>): Range[] {
  return config.trustProxy ? parseRanges(config.trustedProxies) : [];
}

/** True when `peer` (a socket's remote address) lies in one of `ranges`. */
export function isTrustedPeer(peer: string | undefined, ranges: readonly Range[]): boolean {
  if (peer === undefined) return false;
  const bare = peer.replace(/%.*$/, '');
  if (!ipaddr.isValid(bare)) return false;
  const address = ipaddr.process(bare);
  return ranges.some(([base, bits]) => base.kind() === address.kind() && address.match(base as never, bits));
}

/** The headers a reverse proxy sets and Koa (with `proxy` on) believes. */
const FORWARDED_HEADERS = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'] as const;

/**
 * With `trustProxy`, forwarded headers are believed only from the configured `trustedProxies`: a
 * request from any other peer loses them before anything reads them, so a client that reaches the
 * port directly is seen with its own address (for the login throttle, the logs), scheme and host.
 * Installed first, before the request context reads the client address.
 */
export function forwardedHeadersOnlyFromProxies(
  config: Pick<Config, 'trustProxy' | 'trustedProxies'>,
): Koa.Middleware {
  const ranges = parseRanges(config.trustedProxies);
  // Behind a proxy nearly every request comes from the same peer: the last one's verdict is kept
  // (parsing and matching an address costs 1 µs, 6 µs for an IPv4-mapped IPv6 one).
  let lastPeer: string | undefined;
  let lastTrusted = false;
  return (ctx, next) => {
    if (config.trustProxy) {
      const peer = ctx.req.socket?.remoteAddress;
      if (peer !== lastPeer) {
        lastTrusted = isTrustedPeer(peer, ranges);
        lastPeer = peer;
      }
      if (!lastTrusted) for (const header of FORWARDED_HEADERS) delete ctx.req.headers[header];
    }
    return next();
  };
}
