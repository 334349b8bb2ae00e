import type { Mode } from '../config/load.ts';
import { hasUnsafeUriCharacter } from './text.ts';
import type { BackchannelTargetCheck } from './types.ts';

/**
 * The syntactic half of the back-channel logout SSRF gate: an absolute http(s) URI with a host, https in
 * production, no credentials, no fragment. It does NOT resolve the host or judge its addresses;
 * back-channel logout replaces this default with the full gate (which should run this first).
 */
export function syntacticBackchannelTargetCheck(mode: Mode): BackchannelTargetCheck {
  return async (uri) => {
    const reason = backchannelSyntaxProblem(uri, mode);
    return reason === null ? { ok: true } : { ok: false, reason };
  };
}

export function backchannelSyntaxProblem(uri: string, mode: Mode): string | null {
  if (uri.includes('\0')) return 'must not contain NUL bytes';
  if (hasUnsafeUriCharacter(uri))
    return 'is malformed: contains whitespace, control characters or backslashes';
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined)
    return 'must be an absolute URI such as https://app.example.com/backchannel-logout';
  if (scheme !== 'https' && scheme !== 'http')
    return `must use https (or http in development), not ${scheme}:`;
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(uri)?.[1];
  if (!authority || !URL.canParse(uri)) return 'is malformed: expected scheme://host/path';
  if (uri.includes('#')) return 'must not contain a fragment (#…)';
  const url = new URL(uri);
  if (authority.includes('@') || url.username !== '' || url.password !== '')
    return 'must not contain credentials (user:password@)';
  if (url.hostname === '') return 'is malformed: the host is empty';
  if (scheme === 'http' && mode === 'production') return 'must use https in production';
  return null;
}
