import type Koa from 'koa';
import type { AuditBus } from '../../audit/bus.ts';
import type { TwoFactorFailedEvent } from '../../audit/events.ts';
import type { Directory } from '../../directory/port.ts';
import type { Branding } from '../../http/pages/branding.ts';
import type { Logger } from '../../logging/logger.ts';
import { publishContext, requestLog } from '../../logging/request-context.ts';
import { pageContext } from '../../http/pages/layout.ts';
import { recoveryCodesPage, twoFactorCodePage, twoFactorEnrolPage } from '../../http/pages/two-factor.ts';
import {
  type CodeRefusal,
  codeShapeMessage,
  type Enrolment,
  isCodeShaped,
  isShownEnrolment,
  TwoFactorError,
  type TwoFactorService,
  UNREADABLE_SECRET_MESSAGE,
} from '../../two-factor/service.ts';
import { qrSvg } from '../../two-factor/qr.ts';
import { looksLikeTotpCode } from '../../two-factor/totp.ts';
import type { LoginThrottle, ReservedAttempt } from './throttle.ts';
import { sealValue, unsealValue } from './sealed-value.ts';

/**
 * The login's second step, after a right password: a user enrolled in two-factor sign-in enters a
 * code from the authenticator app (or a recovery code); a superuser without an enrolment, when
 * `twoFactor.requiredForSuperusers` is on, enrols right there before the login completes.
 *
 * The state between the steps is a signed value in the form (bound to the interaction and to the
 * user who passed the password step, valid for five minutes), never trusted from the browser
 * otherwise. Every code is an attempt of the login throttle, counted against the user (`reserveCode`):
 * one budget of codes per user, whichever first factor led here (a password in any spelling, or EVE),
 * so neither a second way in nor knowing the password buys extra guesses at the code, and a much
 * smaller budget across addresses than a password's (`login.maxCodeFailuresPerUser`). The password's
 * attempt stays counted as a failure (of the name typed) until the code is right. A wrong code says
 * that the first factor has leaked: it is logged (a warning) and published (`two_factor_failed`),
 * never the code itself; a right code used already (a form sent twice, or a code seen as it was
 * typed) is told so (`reason: "replayed"`), and counts as a wrong one.
 * A sign-in waiting here does not complete once the user's sessions were ended after its password
 * step (a new password, signing out everywhere, revoked tokens, deactivation) or their two-factor
 * sign-in was reset: the password it passed with may be the one just replaced, and a reset must not
 * be outlived by a sign-in under way. The step keeps the user's sign-in generation
 * (src/db/sign-in-generation.ts) as it was after the password, and completes only under the same.
 * The enrolment form sent again by the same sign-in (a double click, a resend without script) shows
 * the recovery codes the first one stored, as the account page does (`confirmedJustNowBy`, the
 * interaction as the confirmer); the login goes on only from that page's Continue.
 */
export type TwoFactorLogin = Pick<
  TwoFactorService,
  | 'status'
  | 'verify'
  | 'beginEnrolment'
  | 'pendingEnrolment'
  | 'confirmEnrolment'
  | 'confirmedJustNowBy'
  | 'repeatConfirmation'
>;

export interface TwoFactorStepDependencies {
  twoFactor: TwoFactorLogin;
  directory: Pick<Directory, 'profileById'>;
  throttle: LoginThrottle;
  /** Where a wrong code is told: the log (a warning) and the audit events (`two_factor_failed`). */
  logger: Logger;
  audit: Pick<AuditBus, 'publish'>;
  /** Superusers must use two-factor sign-in. */
  requiredForSuperusers: boolean;
  /** The user's sign-in generation now (src/db/sign-in-generation.ts). */
  signInGeneration(userId: number): Promise<number>;
  /** HMAC key of the signed state (the interaction CSRF key, under its own label). */
  key: Buffer;
  branding: Branding;
}

/** The routes of the second step, under the interaction's path. */
export const TWO_FACTOR_ACTIONS = ['otp', 'otp-enrol', 'otp-continue'] as const;
export type TwoFactorAction = (typeof TWO_FACTOR_ACTIONS)[number];

type Stage = 'code' | 'enrol' | 'done';

interface PendingLogin {
  uid: string;
  userId: number;
  /** The password's throttle attempt, held as a failure until the code is right (none after EVE). */
  passwordAttempt?: ReservedAttempt;
  amr: string[];
  stage: Stage;
  /** The user's sign-in generation when the password step passed. */
  generation: number;
  /** At the enrolment stage: the id of the enrolment this sign-in showed (`Enrolment.id`). */
  enrolment?: string;
  /** Epoch milliseconds. */
  exp: number;
}

const PENDING_LIFETIME_MS = 5 * 60 * 1000;

/** What the interaction route gives the step: the request, where it is, and how to end it. */
export interface StepRequest {
  ctx: Koa.Context;
  uid: string;
  path: string;
  clientId: string;
  clientName: string;
  csrfToken(): string;
  /** Completes the login with these authentication methods. */
  finishLogin(userId: number, amr: string[]): Promise<void>;
  /** An error page (the state expired or was tampered with). */
  fail(status: number, description: string): void;
}

function sign(key: Buffer, pending: PendingLogin): string {
  return sealValue(key, 'pending-login', pending);
}

function readPending(key: Buffer, value: string | null, uid: string, stage: Stage): PendingLogin | undefined {
  if (!value || value.length > 4096) return undefined;
  const pending = unsealValue(key, 'pending-login', value) as PendingLogin | null | undefined;
  if (typeof pending !== 'object' || pending === null) return undefined;
  if (pending.uid !== uid || pending.stage !== stage || pending.exp < Date.now()) return undefined;
  if (typeof pending.generation !== 'number') return undefined;
  return pending;
}

const THROTTLED = 'Too many wrong attempts. Wait a few minutes, then start again.';
const WRONG_CODE = 'That code is not valid. Check your app and try the current code.';

/** Where a refused code is told: the log (a warning) and the audit events (`two_factor_failed`). */
export interface RefusedCodeTelling {
  logger: Logger;
  audit: Pick<AuditBus, 'publish'>;
}

/** What the log says of a refused code, by where it was given and why it was refused. */
const REFUSED_CODE_MESSAGES: Readonly<Record<TwoFactorFailedEvent['at'], Record<CodeRefusal, string>>> = {
  sign_in: {
    wrong: 'two-factor code wrong after a right first factor',
    replayed: 'two-factor code used already, sent again after a right first factor',
  },
  account_page: {
    wrong: 'two-factor code wrong on the account page (turning two-factor sign-in off)',
    replayed: 'two-factor code used already, sent again on the account page (turning two-factor sign-in off)',
  },
};

/**
 * A code refused after a right first factor (at sign-in), or from a signed-in session (the account
 * page's turning off): told to the operator (a warning, and the `two_factor_failed` event with the
 * client's address and the reason: `wrong`, or `replayed`, a right code used already), by its kind,
 * never its value. A code refused unchecked (429, or no code at all) is not told, as a throttled
 * password is not: the refused codes that spent the budget were.
 */
export function tellRefusedCode(
  deps: RefusedCodeTelling,
  ctx: Koa.Context,
  refused: {
    at: TwoFactorFailedEvent['at'];
    userId: number;
    clientId: string;
    code: string;
    reason: CodeRefusal;
    firstFactor: readonly string[];
  },
): void {
  const codeKind = looksLikeTotpCode(refused.code) ? 'totp' : 'recovery_code';
  const { at, userId, clientId, reason } = refused;
  const firstFactor = [...refused.firstFactor];
  requestLog(ctx, deps.logger).warn(
    { clientId, userId, codeKind, firstFactor, reason, at },
    REFUSED_CODE_MESSAGES[at][reason],
  );
  deps.audit.publish(
    {
      kind: 'two_factor_failed',
      user_id: userId,
      client_id: clientId,
      code_kind: codeKind,
      first_factor: firstFactor,
      reason,
      at,
      address: ctx.ip,
    },
    publishContext(ctx),
  );
}

export function twoFactorStep(deps: TwoFactorStepDependencies) {
  const renderCode = (request: StepRequest, pending: PendingLogin, status = 200, error?: string) => {
    request.ctx.status = status;
    request.ctx.type = 'html';
    request.ctx.body = twoFactorCodePage(
      {
        action: `${request.path}/otp`,
        csrfToken: request.csrfToken(),
        pending: sign(deps.key, pending),
        clientName: request.clientName,
        ...(error ? { error } : {}),
      },
      pageContext(deps.branding, request.ctx),
    );
  };

  const renderEnrol = (
    request: StepRequest,
    pending: PendingLogin,
    enrolment: Enrolment,
    status = 200,
    error?: string,
  ) => {
    request.ctx.status = status;
    request.ctx.type = 'html';
    request.ctx.body = twoFactorEnrolPage(
      {
        action: `${request.path}/otp-enrol`,
        csrfToken: request.csrfToken(),
        pending: sign(deps.key, pending),
        clientName: request.clientName,
        qrSvg: qrSvg(enrolment.uri, `QR code to add ${deps.branding.name} to an authenticator app`),
        secret: enrolment.secret,
        ...(error ? { error } : {}),
      },
      pageContext(deps.branding, request.ctx),
    );
  };

  return {
    /**
     * After a right password: asks for the second factor when the user needs one and answers
     * `handled`; `complete` when the login may finish now (then the caller clears the password's
     * throttle attempt and finishes). After another first factor (EVE) too, without a password attempt.
     */
    async afterPassword(
      request: StepRequest,
      passed: { userId: number; amr: string[]; passwordAttempt?: ReservedAttempt },
    ): Promise<'complete' | 'handled'> {
      const status = await deps.twoFactor.status(passed.userId);
      const generation = await deps.signInGeneration(passed.userId);
      const base = { uid: request.uid, ...passed, generation, exp: Date.now() + PENDING_LIFETIME_MS };
      if (status.enrolled) {
        renderCode(request, { ...base, stage: 'code' });
        return 'handled';
      }
      if (!deps.requiredForSuperusers) return 'complete';
      const profile = await deps.directory.profileById(passed.userId);
      if (!profile?.superuser) return 'complete';
      // A new secret for each sign-in, never one left pending: whoever started that one (someone
      // who knows the password, say) has seen its secret.
      let enrolment: Enrolment;
      try {
        enrolment = await deps.twoFactor.beginEnrolment({ id: profile.id, username: profile.username });
      } catch (error) {
        // Enrolled meanwhile (another sign-in finished its enrolment): a code, as for any enrolled user.
        if (!(error instanceof TwoFactorError)) throw error;
        renderCode(request, { ...base, stage: 'code' });
        return 'handled';
      }
      renderEnrol(request, { ...base, stage: 'enrol', enrolment: enrolment.id }, enrolment);
      return 'handled';
    },

    async submit(request: StepRequest, action: TwoFactorAction, form: URLSearchParams): Promise<void> {
      const stage: Stage = action === 'otp' ? 'code' : action === 'otp-enrol' ? 'enrol' : 'done';
      const pending = readPending(deps.key, form.get('pending'), request.uid, stage);
      if (!pending)
        return request.fail(
          400,
          'This sign-in took too long or was changed. Start again from the application.',
        );
      if ((await deps.signInGeneration(pending.userId)) !== pending.generation)
        return request.fail(
          400,
          'This sign-in was stopped: the account was signed out everywhere (a new password, for one), or its two-factor sign-in was reset, after the password was given. Start again from the application.',
        );
      const fresh = { ...pending, exp: Date.now() + PENDING_LIFETIME_MS };
      const withOtp = [...new Set([...pending.amr, 'otp'])];
      // Whole: a code with characters past the longest the service takes fails, never cut to a valid one.
      const code = form.get('code') ?? '';

      if (stage === 'done') return request.finishLogin(pending.userId, withOtp);

      // A code that is none (nothing typed, five digits) can be no guess: refused naming what is
      // valid, before an attempt is counted for it.
      const shaped = isCodeShaped(code, { recovery: stage === 'code' });
      const attempt = shaped ? await deps.throttle.reserveCode(pending.userId, request.ctx.ip) : undefined;
      // Forgets this address's wrong codes of the user, and the password's attempt with the failures
      // of its name from the address it came from, as a sign-in without a code does.
      const succeeded = async (codeAttempt: ReservedAttempt) => {
        await deps.throttle.succeeded(codeAttempt);
        if (pending.passwordAttempt) await deps.throttle.succeeded(pending.passwordAttempt);
      };
      if (stage === 'code') {
        if (!shaped) return renderCode(request, fresh, 400, codeShapeMessage({ recovery: true }));
        if (!attempt) return renderCode(request, fresh, 429, THROTTLED);
        const check = await deps.twoFactor.verify(pending.userId, code);
        // A code from the app while the secret cannot be decrypted: no wrong code (the service warned),
        // never a pass. The attempt stays counted until a recovery code succeeds, bounding the warnings.
        if (!check.ok && check.reason === 'unreadable_secret')
          return renderCode(request, fresh, 409, UNREADABLE_SECRET_MESSAGE);
        if (!check.ok) {
          tellRefusedCode(deps, request.ctx, {
            at: 'sign_in',
            userId: pending.userId,
            clientId: request.clientId,
            code,
            reason: check.reason,
            firstFactor: pending.amr,
          });
          return renderCode(request, fresh, 401, WRONG_CODE);
        }
        await succeeded(attempt);
        return request.finishLogin(pending.userId, withOtp);
      }

      const profile = await deps.directory.profileById(pending.userId);
      if (!profile) return request.fail(400, 'This account is no longer available.');
      const user = { id: profile.id, username: profile.username };
      // Who confirms: this sign-in, which only the browser holding its (signed) interaction cookie
      // reaches; only it may be shown the same recovery codes again.
      const confirmer = `interaction:${request.uid}`;
      const showCodes = (recoveryCodes: readonly string[]) => {
        request.ctx.type = 'html';
        request.ctx.body = recoveryCodesPage(
          {
            action: `${request.path}/otp-continue`,
            csrfToken: request.csrfToken(),
            pending: sign(deps.key, { ...fresh, stage: 'done' }),
            clientName: request.clientName,
            codes: recoveryCodes,
          },
          pageContext(deps.branding, request.ctx),
        );
      };
      const enrolment = await deps.twoFactor.pendingEnrolment(user);
      if (!enrolment) {
        // This very form, sent again by this sign-in just now (a double click or a resend without
        // script, the first answer never seen): the same recovery codes, under the throttle. The
        // login goes on only from the page's Continue, as after the first answer.
        const confirmation = await deps.twoFactor.confirmedJustNowBy(user.id, pending.enrolment, confirmer);
        // A code that is none cannot be the one that confirmed.
        if (confirmation && shaped) {
          if (!attempt) return request.fail(429, THROTTLED);
          const repeated = await confirmation.repeat(code);
          if (repeated.ok) {
            await succeeded(attempt);
            return showCodes(repeated.recoveryCodes);
          }
        }
        return request.fail(400, 'This enrolment is no longer pending. Start again from the application.');
      }
      // Another sign-in started an enrolment since this one showed its own: its secret is not shown
      // here (whoever started it may know it), and this sign-in starts again.
      if (!isShownEnrolment(enrolment, pending.enrolment))
        return request.fail(
          400,
          'Two-factor enrolment was started again in another sign-in since this page was shown. Start again from the application, and scan the new code.',
        );
      if (!shaped) return renderEnrol(request, fresh, enrolment, 400, codeShapeMessage({ recovery: false }));
      if (!attempt) return renderEnrol(request, fresh, enrolment, 429, THROTTLED);
      let confirmed = await deps.twoFactor.confirmEnrolment(user, code, enrolment.id, confirmer);
      // Confirmed meanwhile by the same form sent twice at once: the codes that one stored.
      if (!confirmed.ok)
        confirmed = await deps.twoFactor.repeatConfirmation(user, code, enrolment.id, confirmer);
      if (!confirmed.ok) return renderEnrol(request, fresh, enrolment, 401, WRONG_CODE);
      await succeeded(attempt);
      showCodes(confirmed.recoveryCodes);
    },
  };
}
