import type * as Undici from 'undici';

let loading: Promise<typeof Undici> | undefined;

/**
 * undici, loaded on first use: a process that never sends a back-channel logout or asks EVE SSO
 * never loads it (about 6 MB of heap at idle).
 */
export function loadUndici(): Promise<typeof Undici> {
  loading ??= import('undici');
  return loading;
}
