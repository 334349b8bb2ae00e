/**
 * Loaded before every test file (`node --import`), and into every process a test spawns (through
 * NODE_OPTIONS in `testEnv`): refuses, inside the process, any name lookup of a host that is not
 * loopback and any TCP connection to an address outside 127.0.0.0/8 and ::1. Tests of code that would
 * reach arbitrary hosts (logout delivery) inject their resolver and connection layer; if one ever
 * forgets, the test fails here and no packet leaves the machine.
 */
import dns from 'node:dns';
import net from 'node:net';

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.']);

function isLoopbackAddress(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  if (/^::ffff:127\.\d+\.\d+\.\d+$/.test(bare)) return true;
  return net.isIPv4(bare) && bare.startsWith('127.');
}

function isLoopbackName(host: string): boolean {
  const lowered = host.toLowerCase();
  return LOOPBACK_NAMES.has(lowered) || lowered.endsWith('.localhost') || isLoopbackAddress(lowered);
}

class NetworkGuardError extends Error {
  override name = 'NetworkGuardError';
  readonly code = 'ENETWORKGUARD';
}

function refuse(what: string): NetworkGuardError {
  return new NetworkGuardError(`network guard: refused ${what}; tests may reach only 127.0.0.0/8 and ::1`);
}

const originalLookup = dns.lookup;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
(dns as any).lookup = function guardedLookup(hostname: string, ...rest: unknown[]) {
  if (typeof hostname === 'string' && !isLoopbackName(hostname)) {
    const callback = rest.find((value) => typeof value === 'function') as
      ((error: Error) => void) | undefined;
    const error = refuse(`a name lookup of "${hostname}"`);
    if (callback) {
      process.nextTick(() => callback(error));
      return {};
    }
    throw error;
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (originalLookup as any).call(dns, hostname, ...rest);
};

const originalPromiseLookup = dns.promises.lookup;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
(dns.promises as any).lookup = async function guardedPromiseLookup(hostname: string, ...rest: unknown[]) {
  if (typeof hostname === 'string' && !isLoopbackName(hostname))
    throw refuse(`a name lookup of "${hostname}"`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (originalPromiseLookup as any).call(dns.promises, hostname, ...rest);
};

for (const method of ['resolve', 'resolve4', 'resolve6', 'resolveAny'] as const) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (dns.promises as any)[method] = async (hostname: string) => {
    throw refuse(`a DNS query for "${hostname}"`);
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (dns as any)[method] = (hostname: string, ...rest: unknown[]) => {
    const callback = rest.find((value) => typeof value === 'function') as
      ((error: Error) => void) | undefined;
    process.nextTick(() => callback?.(refuse(`a DNS query for "${hostname}"`)));
  };
}

const originalConnect = net.Socket.prototype.connect;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: any[]) {
  const first = args[0];
  let host: string | undefined;
  let isPipe = false;
  if (Array.isArray(first)) {
    // Internal normalised form: [options, callback].
    const options = first[0] as { host?: string; path?: string } | undefined;
    host = options?.host;
    isPipe = typeof options?.path === 'string';
  } else if (typeof first === 'object' && first !== null) {
    host = (first as { host?: string }).host;
    isPipe = typeof (first as { path?: string }).path === 'string';
  } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
    isPipe = true; // a path
  } else {
    host = typeof args[1] === 'string' ? args[1] : undefined;
  }
  if (!isPipe && host !== undefined && !isLoopbackName(host)) {
    throw refuse(`a connection to "${host}"`);
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (originalConnect as any).apply(this, args);
} as typeof net.Socket.prototype.connect;
