import * as OTPAuth from 'otpauth';

/**
 * TOTP (RFC 6238) as every authenticator app reads it: HMAC-SHA1, 6 digits, 30-second steps, 160-bit
 * secrets. A code is accepted one step early or late (clock drift) and never twice: the caller keeps
 * the last accepted step and passes it back.
 */
const PERIOD = 30;
const DIGITS = 6;
const ALGORITHM = 'SHA1';
const SECRET_BYTES = 20;

export function newTotpSecret(): string {
  return new OTPAuth.Secret({ size: SECRET_BYTES }).base32;
}

/** The `otpauth://totp/…` URI an app scans: the community's name as issuer, the username as label. */
export function otpauthUri(input: { issuer: string; username: string; secret: string }): string {
  return new OTPAuth.TOTP({
    issuer: input.issuer,
    label: input.username,
    secret: OTPAuth.Secret.fromBase32(input.secret),
    algorithm: ALGORITHM,
    digits: DIGITS,
    period: PERIOD,
  }).toString();
}

/**
 * A code as people type it: digits, maybe with spaces or dashes, maybe full-width (an East Asian
 * keyboard's `１２３４５６`), which NFKC reads as the ASCII digits the app shows.
 */
export function normaliseCode(code: string): string {
  return code.normalize('NFKC').replace(/[\s-]/g, '');
}

export function looksLikeTotpCode(code: string): boolean {
  return new RegExp(`^\\d{${DIGITS}}$`).test(normaliseCode(code));
}

/**
 * The time step of `code` when it is valid now (±1 step) and later than `lastUsedStep`; undefined
 * otherwise.
 */
export function acceptedStep(
  secret: string,
  code: string,
  lastUsedStep: number | null,
  now: number = Date.now(),
): number | undefined {
  const step = validStep(secret, code, now);
  if (step === undefined || (lastUsedStep !== null && step <= lastUsedStep)) return undefined;
  return step;
}

/**
 * The time step of `code` when the app shows it now or a step either side, used before or not;
 * undefined otherwise (`acceptedStep` is what may sign in).
 */
export function validStep(secret: string, code: string, now: number = Date.now()): number | undefined {
  const token = normaliseCode(code);
  if (!looksLikeTotpCode(token)) return undefined;
  const delta = OTPAuth.TOTP.validate({
    token,
    secret: OTPAuth.Secret.fromBase32(secret),
    algorithm: ALGORITHM,
    digits: DIGITS,
    period: PERIOD,
    timestamp: now,
    window: 1,
  });
  if (delta === null) return undefined;
  return OTPAuth.TOTP.counter({ period: PERIOD, timestamp: now }) + delta;
}

/** The current code for `secret` (tests, and the enrolment page's own check). */
export function currentCode(secret: string, now: number = Date.now()): string {
  return new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(secret),
    algorithm: ALGORITHM,
    digits: DIGITS,
    period: PERIOD,
  }).generate({ timestamp: now });
}
