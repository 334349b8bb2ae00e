import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { AuditBus } from '../audit/bus.ts';
import type { Database, TotpEnrolmentTable } from '../db/schema.ts';
import { raiseSignInGeneration } from '../db/sign-in-generation.ts';
import {
  acceptedStep,
  looksLikeTotpCode,
  newTotpSecret,
  normaliseCode,
  otpauthUri,
  validStep,
} from './totp.ts';
import { sameText } from '../util/same-text.ts';

/**
 * Two-factor sign-in: TOTP enrolment with a confirmation code, single-use recovery codes shown once,
 * verification at sign-in (no code accepted twice), and disabling with a code. The one write path of
 * the `totp_enrolment` and `recovery_code` tables; users are named by their directory id, whichever
 * directory holds them.
 */
export interface TwoFactorStatus {
  /** A confirmed enrolment: sign-in asks for a code after the password. */
  enrolled: boolean;
  /** An enrolment started and not yet confirmed. */
  pending: boolean;
  recoveryCodesLeft: number;
}

/**
 * An enrolment under way: its secret, the otpauth URI of the QR code, and an id for the pages to
 * carry (a digest of the secret, which says nothing of it), so that what is confirmed is what was shown.
 */
export interface Enrolment {
  secret: string;
  uri: string;
  id: string;
}

export type RecoveryCodes = { ok: true; recoveryCodes: string[] } | { ok: false };

/** A confirmation just now, as `confirmedJustNowBy` found it (decrypted and derived once, for one request). */
export interface RecentConfirmation {
  /**
   * The recovery codes it stored, when `code` is the very code that confirmed (its step), still
   * valid now, the window still lasts, and the enrolment and its unused codes are still as found:
   * `repeatConfirmation` without decrypting or deriving again. The store is read again, as a caller
   * waits between the two (the throttle): a recovery code used, two-factor turned off or reset, or
   * enrolled anew meanwhile, and the codes are not shown.
   */
  repeat(code: string): Promise<RecoveryCodes>;
}

/**
 * Why a code was refused: `wrong`, no code of the user's (a guess, a typo, an old code); `replayed`,
 * a right code already used (a TOTP code of the step last accepted or an earlier one still shown, or
 * a used recovery code): a form sent twice, or someone who saw the code typed. Either counts as a
 * wrong code in the throttle: a replay can never sign in, and spends the budget so that it cannot
 * be sent without end.
 */
export type CodeRefusal = 'wrong' | 'replayed';

/**
 * A code that could not be checked: a code from the app, while the enrolment's secret cannot be
 * decrypted (sealed under another AA_OIDC_SECRET_KEY, or a row not as aa-oidc wrote it). No guess was
 * judged, so it is no wrong code: the pages say that the app's codes cannot be checked, and that a
 * recovery code (kept as a digest, so still checked) or an administrator's reset gets the member in.
 */
export type UncheckedCode = 'unreadable_secret';

export type CodeCheck =
  | { ok: true; method: 'totp' | 'recovery_code' }
  | { ok: false; reason: CodeRefusal }
  | { ok: false; reason: UncheckedCode };

/** A code as `verify` and `disable` check it: accepted (then spent), or refused with the reason. */
type Checked = true | CodeRefusal | UncheckedCode;

/**
 * What the pages say to a code from the app that `verify` or `disable` could not check
 * (`unreadable_secret`), naming what still works.
 */
export const UNREADABLE_SECRET_MESSAGE =
  'Codes from your authenticator app cannot be checked: this server can no longer read your two-factor secret. Use one of your recovery codes instead, or ask an administrator to reset your two-factor sign-in.';

export interface TwoFactorService {
  status(userId: number): Promise<TwoFactorStatus>;
  /**
   * Starts (or restarts) an enrolment: a new secret, kept unconfirmed until `confirmEnrolment`.
   * Refused when one is confirmed already (disable it first).
   */
  beginEnrolment(user: { id: number; username: string }): Promise<Enrolment>;
  /**
   * The pending enrolment (to show the QR code again after a wrong code). One whose secret cannot be
   * decrypted counts as none: no page can show it, and `beginEnrolment` replaces it.
   */
  pendingEnrolment(user: { id: number; username: string }): Promise<Enrolment | undefined>;
  /**
   * Confirms the pending enrolment with a code from the app; returns the recovery codes, once. Only
   * the enrolment that was shown (`enrolmentId`): one started again meanwhile (another sign-in or
   * page, perhaps of someone who knows the password and so knows its secret) is not confirmed.
   * `confirmer` names who confirms (the browser session, or the sign-in): only it may have the same
   * codes again from `repeatConfirmation`; without one, no one may.
   */
  confirmEnrolment(
    user: { id: number; username: string },
    code: string,
    enrolmentId: string,
    confirmer?: string,
  ): Promise<RecoveryCodes>;
  /**
   * The confirmation of the enrolment `enrolmentId` by `confirmer`, when it was within the last
   * `REPEAT_CONFIRMATION_WINDOW_MS` and no recovery code was used since: only then can the same
   * confirmation be repeated (a caller throttles that check of a code, and no other).
   */
  confirmedJustNowBy(
    userId: number,
    enrolmentId: unknown,
    confirmer: string,
  ): Promise<RecentConfirmation | undefined>;
  /**
   * The same confirmation sent again (a form sent twice, the first answer never seen): the recovery
   * codes the first one stored, when `confirmedJustNowBy` holds and `code` is the very code that
   * confirmed. Nothing is changed; nothing is enabled.
   */
  repeatConfirmation(
    user: { id: number; username: string },
    code: string,
    enrolmentId: unknown,
    confirmer: string,
  ): Promise<RecoveryCodes>;
  /**
   * A code at sign-in: a TOTP code (never one already used) or an unused recovery code (then used).
   * A refusal says whether the code was right but used already (`replayed`) or wrong, or, for a
   * TOTP code, that the enrolment's secret cannot be decrypted (`unreadable_secret`).
   */
  verify(userId: number, code: string): Promise<CodeCheck>;
  /** Removes the enrolment and its recovery codes when `code` is valid. */
  disable(user: { id: number; username: string }, code: string): Promise<CodeCheck>;
  /**
   * An operator's reset (a lost authenticator and recovery codes, or an enrolment the user did not
   * make): removes the enrolment, confirmed or pending, and the recovery codes without a code, stops
   * the user's sign-ins waiting at the two-factor step (their sign-in generation is raised), and
   * publishes `two_factor_disabled` with the operator as the actor. Sessions already signed in stay:
   * "Sign out everywhere" ends them. False when there was none (with `dryRun`, only says whether
   * there is one).
   */
  reset(
    user: { id: number; username: string },
    options: { actor: string; dryRun?: boolean },
  ): Promise<boolean>;
  /** Removes a user's enrolment without a code (the user is gone), inside the change's transaction. */
  forget(userId: number, trx?: Transaction<Database>): Promise<void>;
  /**
   * `aa-oidc directory rebind`: removes every enrolment and recovery code inside `trx` (the user ids
   * they belong to are another directory's); returns how many enrolments went.
   */
  forgetEveryone(trx: Transaction<Database>): Promise<number>;
}

export class TwoFactorError extends Error {
  override name = 'TwoFactorError';
}

export const RECOVERY_CODE_COUNT = 10;

/**
 * How long after a confirmation the same form, sent again by the same session with the same code,
 * shows the same recovery codes: the time a code from the app is accepted (±1 step of 30 s).
 */
export const REPEAT_CONFIRMATION_WINDOW_MS = 90_000;

const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
/** The characters of a recovery code, the dash shown between its halves not counted. */
const RECOVERY_CODE_LENGTH = 10;

/**
 * The recovery codes of one confirmation, `abcde-fghjk`: ten characters each drawn evenly (rejection
 * sampling, unbiased) from a 31-letter alphabet without look-alikes, about 49.5 bits each. They are
 * drawn from HMAC-SHA256 under a key derived from the secret key, over the user, the confirmer, the
 * confirmation time and the enrolment's (random, 160-bit) secret: unpredictable without the secret
 * key, and so computable again for the same confirmer while the window lasts, with nothing of them
 * stored but their digests. Without a confirmer a random one stands in: no one can compute them again.
 */
function recoveryCodesOf(
  key: Buffer,
  input: { userId: number; confirmer: string; confirmedAt: number; secret: string },
): string[] {
  const characters: string[] = [];
  const wanted = RECOVERY_CODE_COUNT * RECOVERY_CODE_LENGTH;
  const limit = 256 - (256 % RECOVERY_ALPHABET.length);
  for (let block = 0; characters.length < wanted; block += 1) {
    const bytes = createHmac('sha256', key)
      .update(JSON.stringify([input.userId, input.confirmer, input.confirmedAt, input.secret, block]))
      .digest();
    for (const byte of bytes)
      if (byte < limit && characters.length < wanted)
        characters.push(RECOVERY_ALPHABET[byte % RECOVERY_ALPHABET.length]!);
  }
  return Array.from({ length: RECOVERY_CODE_COUNT }, (_, index) =>
    shownRecoveryCode(characters.slice(index * RECOVERY_CODE_LENGTH, (index + 1) * RECOVERY_CODE_LENGTH)),
  );
}

/** A recovery code as shown, its halves apart: `abcde-fghjk`. */
function shownRecoveryCode(characters: readonly string[]): string {
  const half = Math.ceil(characters.length / 2);
  return `${characters.slice(0, half).join('')}-${characters.slice(half).join('')}`;
}

/** The recovery code a page shows as an example of their shape (one of the alphabet, `abcde-fghjk`). */
const EXAMPLE_RECOVERY_CODE = shownRecoveryCode([...RECOVERY_ALPHABET.slice(0, RECOVERY_CODE_LENGTH)]);

/** The letters and digits no recovery code has (the look-alikes: i, l, o, 0, 1), as a page names them. */
const NOT_IN_RECOVERY_CODES = [...'abcdefghijklmnopqrstuvwxyz0123456789']
  .filter((character) => !RECOVERY_ALPHABET.includes(character))
  .join(', ');

function normaliseRecoveryCode(code: string): string {
  return code.normalize('NFKC').trim().toLowerCase().replace(/[\s-]/g, '');
}

/**
 * Whether a normalised code (`normaliseRecoveryCode`) is shaped as a recovery code: as many characters
 * as `recoveryCodesOf` draws for one, each of the alphabet it draws them from (no look-alike: no i, l,
 * o, 0 or 1). One that is not can be no user's code.
 */
function isRecoveryCodeShaped(normalised: string): boolean {
  return (
    normalised.length === RECOVERY_CODE_LENGTH &&
    [...normalised].every((character) => RECOVERY_ALPHABET.includes(character))
  );
}

/** The most characters a code may have as typed (spaces and dashes included); longer ones are never cut. */
const MAX_CODE_LENGTH = 64;

/**
 * Whether `code` is shaped as a code at all, before any secret is looked at: six digits (spaces and
 * dashes allowed) or, where `recovery` codes are taken too, a recovery code's (`abcde-fghjk`). One
 * that is not (nothing typed, five digits, a word) can match no user's code, so it is no guess: the
 * pages refuse it naming what is valid (`codeShapeMessage`), and no sign-in attempt is counted.
 */
export function isCodeShaped(code: string, options: { recovery: boolean }): boolean {
  if (code.length > MAX_CODE_LENGTH) return false;
  return looksLikeTotpCode(code) || (options.recovery && isRecoveryCodeShaped(normaliseRecoveryCode(code)));
}

/** What a page says to a code that `isCodeShaped` refuses. */
export function codeShapeMessage(options: { recovery: boolean }): string {
  return options.recovery
    ? `Enter the six-digit code your app shows, or one of your recovery codes (${RECOVERY_CODE_LENGTH} letters and digits, like ${EXAMPLE_RECOVERY_CODE}, with none of ${NOT_IN_RECOVERY_CODES}).`
    : 'Enter the six-digit code your app shows.';
}

const alreadyOn = () =>
  new TwoFactorError('two-factor sign-in is already on; turn it off first to enrol again');

function enrolmentId(secret: string): string {
  return createHash('sha256').update(`totp-enrolment:${secret}`, 'utf8').digest('base64url');
}

/**
 * Whether `shown` (the id a page carries back) is this enrolment's: only then may the page show its
 * secret again. Constant-time, as the id is all that stands between a form and the secret.
 */
export function isShownEnrolment(enrolment: Enrolment, shown: unknown): boolean {
  return typeof shown === 'string' && sameText(enrolment.id, shown);
}

function digest(code: string): string {
  return createHash('sha256').update(normaliseRecoveryCode(code), 'utf8').digest('hex');
}

/** AES-256-GCM under a key derived from the secret key, bound to the user id. */
function secretCipher(secretKey: string) {
  const key = Buffer.from(
    hkdfSync('sha256', Buffer.from(secretKey, 'utf8'), Buffer.alloc(0), 'aa-oidc totp secrets', 32),
  );
  return {
    seal(userId: number, secret: string): string {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(`user:${userId}`));
      const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `v1.${iv.toString('base64url')}.${sealed.toString('base64url')}`;
    },
    open(userId: number, text: string): string {
      const [version, iv, sealed] = text.split('.');
      if (version !== 'v1' || !iv || !sealed) throw new TwoFactorError('unreadable two-factor secret');
      const bytes = Buffer.from(sealed, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(`user:${userId}`));
      decipher.setAuthTag(bytes.subarray(bytes.length - 16));
      return Buffer.concat([
        decipher.update(bytes.subarray(0, bytes.length - 16)),
        decipher.final(),
      ]).toString('utf8');
    },
    /** `open`, or undefined when the text cannot be decrypted (another key, a changed row). */
    openOrUndefined(userId: number, text: string): string | undefined {
      try {
        return this.open(userId, text);
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * The users whose confirmed two-factor enrolment `secretKey` cannot decrypt (sealed under another
 * AA_OIDC_SECRET_KEY, or a row not as aa-oidc wrote it), by user id: their sign-ins refuse codes from
 * the app (`unreadable_secret`). `aa-oidc check` reports them (W023). A pending enrolment is not
 * counted: one that cannot be decrypted counts as none, and the next setup replaces it. Nothing of
 * a secret is kept.
 */
export async function usersWithUnreadableTwoFactorSecrets(
  db: Kysely<Database>,
  secretKey: string,
): Promise<number[]> {
  const cipher = secretCipher(secretKey);
  const rows = await db
    .selectFrom('totp_enrolment')
    .select(['user_id', 'secret_encrypted'])
    .where('confirmed_at', 'is not', null)
    .orderBy('user_id')
    .execute();
  return rows
    .filter((row) => cipher.openOrUndefined(row.user_id, row.secret_encrypted) === undefined)
    .map((row) => Number(row.user_id));
}

export interface TwoFactorDependencies {
  db: Kysely<Database>;
  secretKey: string;
  /**
   * Where a secret that cannot be decrypted is told (a warning naming the user, nothing of the
   * secret): the app's logger (two-factor/ imports no logging of its own).
   */
  logger: { warn(fields: Record<string, unknown>, message: string): void };
  /** The issuer name an authenticator app shows (the community's name). */
  issuerName: string;
  audit: Pick<AuditBus, 'publish'>;
  now?: () => number;
}

export function createTwoFactorService(deps: TwoFactorDependencies): TwoFactorService {
  const { db } = deps;
  const now = deps.now ?? Date.now;
  const cipher = secretCipher(deps.secretKey);
  const recoveryKey = Buffer.from(
    hkdfSync('sha256', Buffer.from(deps.secretKey, 'utf8'), Buffer.alloc(0), 'aa-oidc recovery codes', 32),
  );

  /** Removes the user's enrolment (confirmed or pending) and recovery codes; true when there was one. */
  const removeEnrolment = async (trx: Transaction<Database>, userId: number): Promise<boolean> => {
    const enrolments = await trx
      .deleteFrom('totp_enrolment')
      .where('user_id', '=', userId)
      .executeTakeFirst();
    await trx.deleteFrom('recovery_code').where('user_id', '=', userId).execute();
    return Number(enrolments.numDeletedRows) > 0;
  };

  const enrolmentOf = (userId: number) =>
    db.selectFrom('totp_enrolment').selectAll().where('user_id', '=', userId).executeTakeFirst();

  /**
   * The secret of an enrolment, or undefined (a warning) when it cannot be decrypted: sealed under
   * another AA_OIDC_SECRET_KEY (replaced since, or a backup of another install restored), or a row
   * not as aa-oidc wrote it (AES-GCM tells neither apart). Nothing of the row is logged.
   */
  const secretOf = (
    enrolment: Pick<Selectable<TotpEnrolmentTable>, 'user_id' | 'secret_encrypted' | 'confirmed_at'>,
  ): string | undefined => {
    const secret = cipher.openOrUndefined(enrolment.user_id, enrolment.secret_encrypted);
    if (secret !== undefined) return secret;
    const confirmed = enrolment.confirmed_at !== null;
    deps.logger.warn(
      { userId: enrolment.user_id, enrolment: confirmed ? 'confirmed' : 'pending' },
      confirmed
        ? "the user's two-factor secret could not be decrypted (AA_OIDC_SECRET_KEY is likely not the key it was stored under, or its row was changed): codes from their authenticator app are refused; their recovery codes still work, and an administrator can reset their two-factor sign-in (aa-oidc check lists every such user)"
        : "the user's pending two-factor enrolment could not be decrypted (AA_OIDC_SECRET_KEY is likely not the key it was stored under, or its row was changed): it counts as none, and setting two-factor sign-in up again replaces it",
    );
    return undefined;
  };

  const enrolment = (user: { username: string }, secret: string): Enrolment => ({
    secret,
    uri: otpauthUri({ issuer: deps.issuerName, username: user.username, secret }),
    id: enrolmentId(secret),
  });

  const recoveryCodesLeft = async (userId: number) => {
    const row = await db
      .selectFrom('recovery_code')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('user_id', '=', userId)
      .where('used_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  };

  const changed = (
    userId: number,
    username: string,
    action: 'two_factor_enabled' | 'two_factor_disabled',
    actor = `self:${username}`,
  ) =>
    deps.audit.publish({
      kind: 'admin_change',
      entity: 'user',
      action,
      entity_id: userId,
      name: username,
      actor,
      changed_fields: ['two_factor'],
      details: {},
    });

  /**
   * A TOTP code against a confirmed enrolment, recording its step so it never counts again. A code
   * valid now at a step already used (or passed) is `replayed`.
   */
  const checkTotp = async (userId: number, code: string): Promise<Checked> => {
    const enrolment = await enrolmentOf(userId);
    if (!enrolment || enrolment.confirmed_at === null) return 'wrong';
    const lastStep = enrolment.last_used_step === null ? null : Number(enrolment.last_used_step);
    const secret = secretOf(enrolment);
    if (secret === undefined) return 'unreadable_secret';
    const step = validStep(secret, code, now());
    if (step === undefined) return 'wrong';
    if (lastStep !== null && step <= lastStep) return 'replayed';
    // Only one of two concurrent uses of the same code moves the step forward: the other is a replay.
    const result = await db
      .updateTable('totp_enrolment')
      .set({ last_used_step: step })
      .where('user_id', '=', userId)
      .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', step)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1 ? true : 'replayed';
  };

  /** A recovery code of the user's, then used; one used already (its row is kept) is `replayed`. */
  const checkRecoveryCode = async (userId: number, code: string): Promise<Checked> => {
    const normalised = normaliseRecoveryCode(code);
    if (!isRecoveryCodeShaped(normalised)) return 'wrong';
    const wanted = Buffer.from(digest(normalised), 'hex');
    const rows = await db
      .selectFrom('recovery_code')
      .select(['id', 'code_sha256', 'used_at'])
      .where('user_id', '=', userId)
      .execute();
    const match = rows.find((row) => timingSafeEqual(Buffer.from(row.code_sha256, 'hex'), wanted));
    if (!match) return 'wrong';
    if (match.used_at !== null) return 'replayed';
    const result = await db
      .updateTable('recovery_code')
      .set({ used_at: now() })
      .where('id', '=', match.id)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1 ? true : 'replayed';
  };

  /** A confirmed enrolment and the digests of its unused recovery codes, as stored now. */
  const confirmedEnrolmentOf = async (userId: number) => {
    const enrolment = await enrolmentOf(userId);
    if (!enrolment || enrolment.confirmed_at === null || enrolment.last_used_step === null) return undefined;
    const stored = await db
      .selectFrom('recovery_code')
      .select('code_sha256')
      .where('user_id', '=', userId)
      .where('used_at', 'is', null)
      .execute();
    return { enrolment, unused: stored.map((row) => row.code_sha256) };
  };

  /**
   * The recovery codes `confirmer` was shown for the enrolment `shown`, when it confirmed it within
   * the window and every code is still unused; to show again for the very code that confirmed.
   */
  const confirmedJustNowBy: TwoFactorService['confirmedJustNowBy'] = async (userId, shown, confirmer) => {
    if (typeof shown !== 'string' || typeof confirmer !== 'string' || confirmer === '') return undefined;
    const found = await confirmedEnrolmentOf(userId);
    if (!found) return undefined;
    const { enrolment } = found;
    const confirmedAt = Number(enrolment.confirmed_at);
    const step = Number(enrolment.last_used_step);
    const withinWindow = () => now() - confirmedAt <= REPEAT_CONFIRMATION_WINDOW_MS;
    if (!withinWindow()) return undefined;
    const secret = secretOf(enrolment);
    if (secret === undefined || !sameText(enrolmentId(secret), shown)) return undefined;
    const recoveryCodes = recoveryCodesOf(recoveryKey, { userId, confirmer, confirmedAt, secret });
    const digests = recoveryCodes.map(digest);
    // Every code of this confirmation, and no other, stored and unused.
    const allUnused = (unused: readonly string[]) => {
      const set = new Set(unused);
      return unused.length === digests.length && digests.every((code) => set.has(code));
    };
    if (!allUnused(found.unused)) return undefined;
    return {
      async repeat(code) {
        // The very code that confirmed (its step), still valid now: a form sent again, not a new one.
        if (typeof code !== 'string' || !withinWindow() || acceptedStep(secret, code, null, now()) !== step)
          return { ok: false };
        // Still the same enrolment, at the same step, with every code unused: read again, as the
        // caller may have waited since (the throttle), and a code used meanwhile ends the repeat.
        const still = await confirmedEnrolmentOf(userId);
        if (
          !still ||
          still.enrolment.secret_encrypted !== enrolment.secret_encrypted ||
          Number(still.enrolment.confirmed_at) !== confirmedAt ||
          Number(still.enrolment.last_used_step) !== step ||
          !allUnused(still.unused) ||
          !withinWindow()
        )
          return { ok: false };
        return { ok: true, recoveryCodes };
      },
    };
  };

  const verify: TwoFactorService['verify'] = async (userId, code) => {
    if (typeof code !== 'string' || code.length > MAX_CODE_LENGTH) return { ok: false, reason: 'wrong' };
    const method = looksLikeTotpCode(code) ? 'totp' : 'recovery_code';
    let checked: Checked;
    if (method === 'totp') checked = await checkTotp(userId, normaliseCode(code));
    else {
      const enrolment = await enrolmentOf(userId);
      checked =
        !enrolment || enrolment.confirmed_at === null ? 'wrong' : await checkRecoveryCode(userId, code);
    }
    return checked === true ? { ok: true, method } : { ok: false, reason: checked };
  };

  return {
    async status(userId) {
      const enrolment = await enrolmentOf(userId);
      return {
        enrolled: enrolment?.confirmed_at != null,
        pending: enrolment !== undefined && enrolment.confirmed_at === null,
        recoveryCodesLeft: enrolment?.confirmed_at != null ? await recoveryCodesLeft(userId) : 0,
      };
    },

    async beginEnrolment(user) {
      const current = await enrolmentOf(user.id);
      if (current?.confirmed_at != null) throw alreadyOn();
      const secret = newTotpSecret();
      const row = {
        user_id: user.id,
        secret_encrypted: cipher.seal(user.id, secret),
        confirmed_at: null,
        last_used_step: null,
        created_at: now(),
      };
      // One statement over a pending enrolment, never over a confirmed one: two begun at once (a
      // password form sent twice, two sign-ins) both answer, the later one's secret standing.
      const result = await db
        .insertInto('totp_enrolment')
        .values(row)
        .onConflict((conflict) =>
          conflict
            .column('user_id')
            .doUpdateSet({
              secret_encrypted: row.secret_encrypted,
              last_used_step: null,
              created_at: row.created_at,
            })
            .where('totp_enrolment.confirmed_at', 'is', null),
        )
        .executeTakeFirst();
      if (Number(result.numInsertedOrUpdatedRows ?? 0) !== 1) throw alreadyOn();
      return enrolment(user, secret);
    },

    async pendingEnrolment(user) {
      const current = await enrolmentOf(user.id);
      if (!current || current.confirmed_at !== null) return undefined;
      const secret = secretOf(current);
      return secret === undefined ? undefined : enrolment(user, secret);
    },

    async confirmEnrolment(user, code, shown, confirmer = randomBytes(32).toString('base64url')) {
      const userId = user.id;
      const current = await enrolmentOf(userId);
      if (!current || current.confirmed_at !== null || typeof code !== 'string') return { ok: false };
      const secret = secretOf(current);
      if (secret === undefined || typeof shown !== 'string' || !sameText(enrolmentId(secret), shown))
        return { ok: false };
      const step = acceptedStep(secret, code, null, now());
      if (step === undefined) return { ok: false };
      const at = now();
      const recoveryCodes = recoveryCodesOf(recoveryKey, { userId, confirmer, confirmedAt: at, secret });
      const confirmed = await db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('totp_enrolment')
          .set({ confirmed_at: at, last_used_step: step })
          .where('user_id', '=', userId)
          .where('confirmed_at', 'is', null)
          .where('secret_encrypted', '=', current.secret_encrypted)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await trx.deleteFrom('recovery_code').where('user_id', '=', userId).execute();
        await trx
          .insertInto('recovery_code')
          .values(
            recoveryCodes.map((code) => ({
              user_id: userId,
              code_sha256: digest(code),
              used_at: null,
              created_at: at,
            })),
          )
          .execute();
        return true;
      });
      if (!confirmed) return { ok: false };
      changed(userId, user.username, 'two_factor_enabled');
      return { ok: true, recoveryCodes };
    },

    confirmedJustNowBy,

    async repeatConfirmation(user, code, shown, confirmer) {
      if (typeof code !== 'string') return { ok: false };
      const confirmation = await confirmedJustNowBy(user.id, shown, confirmer);
      return confirmation ? confirmation.repeat(code) : { ok: false };
    },

    verify,

    async disable(user, code) {
      const userId = user.id;
      const check = await verify(userId, code);
      if (!check.ok) return check;
      await db.transaction().execute((trx) => removeEnrolment(trx, userId));
      changed(userId, user.username, 'two_factor_disabled');
      return check;
    },

    async reset(user, options) {
      if (options.dryRun) return (await enrolmentOf(user.id)) !== undefined;
      const removed = await db.transaction().execute(async (trx) => {
        const removed = await removeEnrolment(trx, user.id);
        if (removed) await raiseSignInGeneration(trx, user.id);
        return removed;
      });
      if (removed) changed(user.id, user.username, 'two_factor_disabled', options.actor);
      return removed;
    },

    async forget(userId, within) {
      if (within) await removeEnrolment(within, userId);
      else await db.transaction().execute((trx) => removeEnrolment(trx, userId));
    },

    async forgetEveryone(trx) {
      const enrolments = await trx.deleteFrom('totp_enrolment').executeTakeFirst();
      await trx.deleteFrom('recovery_code').execute();
      return Number(enrolments.numDeletedRows);
    },
  };
}
