import { timingSafeEqual } from 'node:crypto';

/**
 * Whether two strings are equal, in time that depends on their lengths only (their UTF-8 bytes), not
 * on where they differ: for secrets, MACs and tokens a request presents.
 */
export function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}
