import dns from 'node:dns';

/** One answer of a name lookup. The gate parses `address` itself; `family` is informative only. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/**
 * Resolves a host name to every address a connection could use. Injected into the SSRF gate so
 * that tests never use real DNS; a rejection means the name did not resolve.
 */
export type Resolver = (hostname: string, options: { signal: AbortSignal }) => Promise<ResolvedAddress[]>;

/**
 * The production resolver: the system's resolver (getaddrinfo, as any client on this host would
 * see the name), every address in the order it gave them. getaddrinfo cannot be cancelled; the
 * gate stops waiting at its timeout and ignores a late answer.
 */
export const systemResolver: Resolver = async (hostname) => {
  // Looked up at call time (not bound at import), so a process-wide guard in tests sees it.
  const answers = await dns.promises.lookup(hostname, { all: true, order: 'verbatim' });
  return answers.map(({ address, family }) => ({ address, family }));
};
