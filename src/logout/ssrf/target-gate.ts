import type { Mode } from '../../config/load.ts';
import { assertNever } from '../../util/assert-never.ts';
import {
  type AddressClass,
  type AddressVerdict,
  closedToPrivateTargets,
  judgeAddress,
  parseAddress,
} from './address-classes.ts';
import type { ResolvedAddress, Resolver } from './resolver.ts';

/**
 * The SSRF gate for a back-channel logout URI: run at every write of an application
 * and again right before each delivery, which then connects only to the addresses it returns.
 */

export const DEFAULT_DNS_TIMEOUT_MS = 3000;

export interface GateOptions {
  mode: Mode;
  /** `logout.allowPrivateTargets`: the development escape hatch (loopback, private, CGNAT, ULA, link-local). */
  allowPrivateTargets: boolean;
  resolver: Resolver;
  /** How long a name may take to resolve before the gate refuses it (default 3000 ms). */
  dnsTimeoutMs?: number;
}

export type GateRefusalReason =
  'invalid_uri' | 'scheme_not_allowed' | 'dns_resolve_failed' | 'unsafe_target_ip';

/** An address the gate judged acceptable, and the one a connection to it must use. */
export interface CheckedAddress {
  /** Where to connect (the IPv4 address for an IPv4-mapped answer). */
  address: string;
  family: 4 | 6;
  verdict: Extract<AddressVerdict, { kind: 'public' | 'non_public' }>;
}

export type GateVerdict =
  | {
      ok: true;
      url: URL;
      /** The host as written in the URL, brackets removed (the TLS server name drops a trailing dot). */
      host: string;
      /** True when the URL names an IP address (then nothing was resolved). */
      literal: boolean;
      port: number;
      /** Every address the host resolved to, each judged; never empty. */
      addresses: CheckedAddress[];
    }
  | {
      ok: false;
      reason: GateRefusalReason;
      /** One line for an operator; names the host and the offending address, never a secret. */
      detail: string;
      /** For `unsafe_target_ip` on an address: what the address is (of the embedded IPv4, if any). */
      addressClass?: AddressClass;
    };

/** Judges a back-channel logout URI; never throws (a resolver failure is a refusal). */
export async function checkBackchannelTarget(
  uri: string,
  options: GateOptions,
  /** Abandons the lookup (a delivery's overall deadline); the gate then refuses as dns_resolve_failed. */
  cancel?: AbortSignal,
): Promise<GateVerdict> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return refuse('invalid_uri', 'is not an absolute URI');
  }
  const protocol = url.protocol;
  if (protocol !== 'https:' && protocol !== 'http:')
    return refuse(
      'scheme_not_allowed',
      `uses ${protocol} where only https (or http in development) is allowed`,
    );
  if (protocol === 'http:' && options.mode !== 'development')
    return refuse('scheme_not_allowed', 'uses http, but production requires https');
  if (url.username !== '' || url.password !== '')
    return refuse('invalid_uri', 'contains credentials (user:password@)');
  // WHATWG parsing has already turned `0x7f.1`, `2130706433`, `0177.0.0.1` and `127.1` into
  // dotted IPv4, and IPv6 into canonical bracketed form; parseAddress also reads the legacy forms,
  // so whatever the text was, an IP host is judged as the address it parses to.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') return refuse('invalid_uri', 'has no host');
  const port = url.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(url.port);
  // WHATWG accepts it; a connection to it fails on every attempt, retried to exhaustion.
  if (port === 0) return refuse('invalid_uri', 'has port 0, which no server listens on');

  const literal = parseAddress(host);
  if (literal !== undefined) {
    const judged = acceptable(judgeAddress(literal), options);
    if (!judged.ok) return refuse('unsafe_target_ip', judged.detail, judged.addressClass);
    return { ok: true, url, host, literal: true, port, addresses: [judged.checked] };
  }

  const name = host.toLowerCase().replace(/\.+$/, '');
  if ((name === 'localhost' || name.endsWith('.localhost')) && !options.allowPrivateTargets)
    return refuse(
      'unsafe_target_ip',
      `${host} always names this machine (RFC 6761); it is not resolved`,
      'loopback',
    );
  // WHATWG keeps `.`, `a..b`, `.rp.example` and `rp.example..` as hosts; no resolver can answer for an
  // empty label, and naming it says more than a lookup's ENOTFOUND (one trailing dot, a fully
  // qualified name, is no empty label).
  if (host.replace(/\.$/, '').split('.').includes(''))
    return refuse(
      'invalid_uri',
      `has the host ${JSON.stringify(host)}, with an empty label: a host name is labels joined by single dots`,
    );
  const tooLong = dnsLengthProblem(host);
  if (tooLong !== undefined) return refuse('invalid_uri', tooLong);

  const resolved = await resolveWithin(
    host,
    options.resolver,
    options.dnsTimeoutMs ?? DEFAULT_DNS_TIMEOUT_MS,
    cancel,
  );
  if (!resolved.ok) return refuse('dns_resolve_failed', `${host} ${resolved.detail}`);

  const addresses: CheckedAddress[] = [];
  for (const answer of resolved.answers) {
    const text = typeof answer?.address === 'string' ? answer.address : String(answer?.address);
    const parsed = parseAddress(text);
    if (parsed === undefined)
      return refuse(
        'unsafe_target_ip',
        `${host} resolves to ${JSON.stringify(text)}, which is not an IP address`,
      );
    // One unacceptable answer refuses the target: a client may connect to any of them.
    const judged = acceptable(judgeAddress(parsed), options);
    if (!judged.ok)
      return refuse(
        'unsafe_target_ip',
        `${host} resolves to an unsafe address: ${judged.detail}`,
        judged.addressClass,
      );
    if (!addresses.some((known) => known.address === judged.checked.address)) addresses.push(judged.checked);
  }
  return { ok: true, url, host, literal: false, port, addresses };
}

/** RFC 1035's limits, counted on the ASCII (punycode) form WHATWG gives the host in. */
const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

/**
 * What makes a host name one DNS cannot hold, or undefined. WHATWG parsing does not check lengths
 * (its VerifyDnsLength is off), so such a name would reach the resolver, and be refused only as a
 * lookup's ENOTFOUND (retried at delivery) or after its timeout. The host is shortened in the detail,
 * which the delivery-attempt table keeps to 300 characters.
 */
function dnsLengthProblem(host: string): string | undefined {
  const name = host.replace(/\.$/, '');
  if (name.length > MAX_NAME_LENGTH)
    return `has a host name of ${name.length} characters, where DNS allows at most ${MAX_NAME_LENGTH}: ${shortened(host)}`;
  const longest = name.split('.').reduce((longer, label) => (label.length > longer.length ? label : longer));
  if (longest.length > MAX_LABEL_LENGTH)
    return `has a label of ${longest.length} characters in its host, where DNS allows at most ${MAX_LABEL_LENGTH}: ${shortened(host)}`;
  return undefined;
}

/** A host for a one-line detail: its start and its end when it is long. */
function shortened(host: string): string {
  return JSON.stringify(host.length <= 64 ? host : `${host.slice(0, 40)}…${host.slice(-20)}`);
}

function refuse(reason: GateRefusalReason, detail: string, addressClass?: AddressClass): GateVerdict {
  return addressClass === undefined
    ? { ok: false, reason, detail }
    : { ok: false, reason, detail, addressClass };
}

function acceptable(
  verdict: AddressVerdict,
  options: GateOptions,
): { ok: true; checked: CheckedAddress } | { ok: false; detail: string; addressClass?: AddressClass } {
  switch (verdict.kind) {
    case 'public':
      return { ok: true, checked: { address: verdict.connectAddress, family: verdict.family, verdict } };
    case 'non_public': {
      if (!options.allowPrivateTargets)
        return { ok: false, detail: verdict.reason, addressClass: verdict.addressClass };
      const closed = closedToPrivateTargets(verdict);
      if (closed !== undefined) return { ok: false, detail: closed, addressClass: verdict.addressClass };
      return { ok: true, checked: { address: verdict.connectAddress, family: verdict.family, verdict } };
    }
    case 'unparseable':
      return { ok: false, detail: verdict.reason };
    default:
      return assertNever(verdict);
  }
}

type Resolution = { ok: true; answers: ResolvedAddress[] } | { ok: false; detail: string };

async function resolveWithin(
  host: string,
  resolver: Resolver,
  timeoutMs: number,
  cancel: AbortSignal | undefined,
): Promise<Resolution> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onCancel: (() => void) | undefined;
  const timeout = new Promise<Resolution>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ ok: false, detail: `did not resolve within ${timeoutMs} ms` });
    }, timeoutMs);
    onCancel = () => {
      controller.abort();
      resolve({ ok: false, detail: 'was still resolving when the delivery ran out of time' });
    };
    if (cancel?.aborted) onCancel();
    else cancel?.addEventListener('abort', onCancel, { once: true });
  });
  const lookup = (async (): Promise<Resolution> => {
    try {
      const answers = await resolver(host, { signal: controller.signal });
      if (!Array.isArray(answers) || answers.length === 0)
        return { ok: false, detail: 'resolved to no address' };
      return { ok: true, answers };
    } catch (error) {
      return { ok: false, detail: `did not resolve (${errorCode(error)})` };
    }
  })();
  try {
    return await Promise.race([lookup, timeout]);
  } finally {
    clearTimeout(timer);
    if (onCancel) cancel?.removeEventListener('abort', onCancel);
  }
}

/** The resolver's error code (ENOTFOUND, EAI_AGAIN…), not its message: nothing else leaks. */
function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Za-z0-9_]{1,40}$/.test(code)) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && /^[A-Za-z0-9_]{1,40}$/.test(name)) return name;
  }
  return 'resolver error';
}
