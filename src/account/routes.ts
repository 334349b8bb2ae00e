import type { Kysely } from 'kysely';
import type { ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { type ConsoleSession, signInAgainPath } from '../console/session.ts';
import { csrfField, doneMessage, formatTime, postButton, textField } from '../console/ui.ts';
import type { Database } from '../db/schema.ts';
import { DirectoryError } from '../directory/errors.ts';
import {
  MAX_PASSWORD_LENGTH,
  normalizePassword,
  validateNewPassword,
} from '../directory/builtin/passwords.ts';
import type { DirectoryAdmin } from '../directory/builtin/types.ts';
import type { UserProfile } from '../directory/port.ts';
import type { Branding } from '../http/pages/branding.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { scopeDescription } from '../http/pages/scope-descriptions.ts';
import { selectUserGrants } from '../tokens/store.ts';
import { portraitUrl } from '../oidc/claims.ts';
import { askReleasingIfUnanswered, type LoginThrottle } from '../oidc/interactions/throttle.ts';
import { type RefusedCodeTelling, tellRefusedCode } from '../oidc/interactions/two-factor-step.ts';
import type { TokenRevocationService } from '../tokens/revocation.ts';
import { qrSvg } from '../two-factor/qr.ts';
import { sameText } from '../util/same-text.ts';
import {
  codeShapeMessage,
  type Enrolment,
  isCodeShaped,
  isShownEnrolment,
  TwoFactorError,
  type TwoFactorService,
  UNREADABLE_SECRET_MESSAGE,
} from '../two-factor/service.ts';
import { ACCOUNT_CONSOLE_CLIENT_ID } from '../applications/account-console.ts';
import { isShownLogoUrl } from '../applications/validate.ts';
import { admitsToNoApplication } from '../policy/reach.ts';
import { sessionRoutes, sessionsSection } from './sessions.ts';

/**
 * The account page of every signed-in user (`/account`): who they are, the applications they allowed
 * (with revoke, or why none admits them), where they are signed in (with sign out everywhere,
 * `sessions.ts`), their password, and two-factor sign-in. Every change goes through the service that
 * owns it, as the CLI's do; every check of a password or a code is under the login throttle (a code in
 * the user's one budget of codes, the sign-in's: `reserveCode`).
 */
export interface AccountDependencies {
  config: Pick<Config, 'oidc' | 'twoFactor' | 'directory'>;
  branding: Branding;
  /**
   * The built-in directory's password checks and changes; absent for a read-only directory, whose
   * password section tells what the visitor's profile says of the password it keeps (`keptPassword`).
   */
  directoryAdmin?: Pick<DirectoryAdmin, 'verifyPassword' | 'setPassword'>;
  /** `list`: the active applications, to tell a member whose access admits them to none of them. */
  applications: Pick<ApplicationService, 'findByClientId' | 'list'>;
  tokens: Pick<TokenRevocationService, 'revokeApplication' | 'signOutUser'>;
  twoFactor: TwoFactorService;
  throttle: LoginThrottle;
  db: Kysely<Database>;
  /**
   * For the warning when a password check's throttle place cannot be given back, and for a refused
   * code to turn two-factor sign-in off (`tellRefusedCode`, with `audit`).
   */
  logger: RefusedCodeTelling['logger'];
  audit: RefusedCodeTelling['audit'];
}

const DONE: Readonly<Record<string, string>> = {
  revoked:
    'Access revoked: the application was told to sign you out, and asks again before it can use your account.',
  'nothing-held': 'Nothing to revoke: that application held no access to your account.',
  password: 'Password changed.',
  'two-factor-off': 'Two-factor sign-in is off.',
};

const THROTTLED = 'Too many wrong attempts. Wait a few minutes, then try again.';

/**
 * How recent the sign-in behind the console session must be to turn two-factor sign-in on (to start
 * the setup, and to confirm it). A session is more than the person at it: a browser left unlocked, a
 * copied cookie. Two-factor sign-in turned on with someone else's app locks the owner out of every
 * later sign-in until a superuser resets it, so the setup asks for the sign-in itself again, the way
 * everyone here signs in (a password, Alliance Auth's, or EVE Online), not for a password some do not
 * have. Ten minutes (as long as the console's own sign-in flow may last) leaves room to sign in, open
 * an authenticator app, scan the code and confirm, and is far shorter than a session left behind; the
 * other credential changes ask for a secret already (the current password, a code to turn it off).
 */
const RECENT_SIGN_IN_MS = 10 * 60 * 1000;

/** Whether the sign-in behind `session` is recent enough for `RECENT_SIGN_IN_MS`; unknown is not. */
function signedInRecently(session: Pick<ConsoleSession, 'loginTs'>, now = Date.now()): boolean {
  return session.loginTs !== null && now - session.loginTs * 1000 <= RECENT_SIGN_IN_MS;
}

/** Why a password change was refused, and the field it is about (the one that takes the focus). */
interface PasswordRefusal {
  field: 'current_password' | 'new_password' | 'new_password_again';
  message: string;
}

/** What the account page says in a section after a refused form there. */
interface SectionNotes {
  password?: PasswordRefusal;
  /** About the section as a whole (no field of it is to blame). */
  twoFactor?: string;
  /** About the code given to turn two-factor sign-in off. */
  twoFactorCode?: string;
}

/**
 * A refusal about a section rather than one of its fields. It takes the focus, as a field in error
 * does: the section may be far down the page the form's answer starts at the top of.
 */
function sectionAlert(message: string): Html {
  return html`<p class="alert" role="alert" tabindex="-1" autofocus>${message}</p>`;
}

/**
 * Why the page lists no application for a member whose state and groups admit them to none
 * (`admitsToNoApplication`): their own state named, where access is decided, and nothing about any
 * application, its whitelist or another member's state.
 */
function noApplicationNote(profile: UserProfile, config: AccountDependencies['config']): Html {
  const state = profile.state?.name;
  const grouped = profile.groups.length > 0;
  const what =
    state === undefined
      ? grouped
        ? 'You have no state, and your groups give access to no application here.'
        : 'You have no state and no group, so no application here is open to you.'
      : grouped
        ? html`Your state, <strong>${state}</strong>, and your groups give access to no application here.`
        : html`Your state, <strong>${state}</strong>, gives access to no application here.`;
  const { loginUrl } = config.directory.allianceAuth;
  const where =
    config.directory.source === 'alliance-auth'
      ? html`Access follows your state and groups on
        ${loginUrl ? html`<a href="${loginUrl}">Alliance Auth</a>` : 'Alliance Auth'}.`
      : 'Access follows your state and groups, which the administrators here set.';
  return html`<p id="no-access">${what} ${where}</p>`;
}

function identity(profile: UserProfile, config: AccountDependencies['config']): Html {
  const main = profile.mainCharacter;
  const portrait = main.characterId === null ? undefined : portraitUrl(main.characterId, config.oidc);
  const corporation = main.corporationName
    ? `${main.corporationName}${main.corporationTicker ? ` [${main.corporationTicker}]` : ''}`
    : null;
  const alliance = main.allianceName
    ? `${main.allianceName}${main.allianceTicker ? ` <${main.allianceTicker}>` : ''}`
    : null;
  return html`<section aria-labelledby="who">
    ${
      portrait
        ? html`<img
            class="portrait"
            src="${portrait}"
            alt="Portrait of ${main.characterName ?? profile.username}"
            width="64"
            height="64"
          />`
        : ''
    }
    <h2 id="who">${main.characterName ?? profile.username}</h2>
    <dl class="facts">
      <dt>Username</dt>
      <dd>${profile.username}</dd>
      ${
        profile.email
          ? html`<dt>Email</dt>
              <dd>${profile.email}</dd>`
          : ''
      }
      ${
        corporation
          ? html`<dt>Corporation</dt>
              <dd>${corporation}</dd>`
          : ''
      }
      ${
        alliance
          ? html`<dt>Alliance</dt>
              <dd>${alliance}</dd>`
          : ''
      }
      ${
        main.factionName
          ? html`<dt>Faction</dt>
              <dd>${main.factionName}</dd>`
          : ''
      }
      <dt>State</dt>
      <dd>${profile.state?.name ?? 'none'}</dd>
      <dt>Groups</dt>
      <dd>${profile.groups.length === 0 ? 'none' : profile.groups.map((group) => group.name).join(', ')}</dd>
      ${
        profile.superuser
          ? html`<dt>Role</dt>
              <dd>administrator (superuser)</dd>`
          : ''
      }
    </dl>
  </section>`;
}

export function accountRoutes(deps: AccountDependencies): ConsoleRoute[] {
  const profileOf = (request: ConsoleRequest) => request.visitor!;
  const who = (request: ConsoleRequest) => ({
    id: profileOf(request).id,
    username: profileOf(request).username,
  });

  const overview = async (request: ConsoleRequest, notes: SectionNotes = {}, status = 200) => {
    const profile = profileOf(request);
    const userId = profile.id;
    const [grants, twoFactor, sessions, activeApps] = await Promise.all([
      selectUserGrants(deps.db, userId),
      deps.twoFactor.status(userId),
      sessionsSection(deps, request),
      deps.applications.list({ active: true }),
    ]);
    const apps = await Promise.all(
      grants
        .filter((grant) => grant.clientId !== ACCOUNT_CONSOLE_CLIENT_ID)
        .map(async (grant) => ({ grant, app: await deps.applications.findByClientId(grant.clientId) })),
    );
    const required = deps.config.twoFactor.requiredForSuperusers && profile.superuser;
    // "None yet" would promise an application to allow: the member is told why there is none instead.
    const admitsToNone = admitsToNoApplication(profile, activeApps);
    const recentSignIn = signedInRecently(request.session!);
    request.render(
      'Your account',
      html`<h1>Your account</h1>
        ${doneMessage(DONE, request.ctx.query.done)}
        ${
          required && !twoFactor.enrolled
            ? html`<p class="warn" role="status">
                Administrators must use two-factor sign-in here: set it up below to reach the administration
                pages.
              </p>`
            : ''
        }
        ${identity(profile, deps.config)}

        <section aria-labelledby="apps">
          <h2 id="apps">Applications you allowed</h2>
          ${
            apps.length === 0
              ? admitsToNone
                ? ''
                : html`<p>None yet. An application appears here once you allow it to use your account.</p>`
              : html`<ul class="grants">
                  ${apps.map(
                    ({ grant, app }) =>
                      html`<li>
                        ${isShownLogoUrl(app?.logoUrl) ? html`<img class="logo" src="${app.logoUrl}" alt="" width="32" height="32" />` : ''}
                        <strong>${app?.name ?? grant.clientId}</strong
                        >${app && !app.active ? ' (switched off)' : ''} <br /><span class="note"
                          >Can see
                          ${grant.scopes.map((scope) => scopeDescription(scope, deps.config.oidc.eveClaimsScope, 'within')).join(', ') || 'nothing'}
                          · since ${formatTime(grant.grantedAt)}</span
                        >
                        <br />${postButton(request.session, `/account/apps/${encodeURIComponent(grant.clientId)}/revoke`, `Revoke access of ${app?.name ?? grant.clientId}`, { kind: 'secondary' })}
                      </li>`,
                  )}
                </ul>`
          }
          ${admitsToNone ? noApplicationNote(profile, deps.config) : ''}
        </section>

        ${sessions}
        ${deps.directoryAdmin ? passwordSection(request, notes.password) : elsewherePasswordSection(notes.password, profile)}

        <section aria-labelledby="two-factor">
          <h2 id="two-factor">Two-factor sign-in</h2>
          ${notes.twoFactor ? sectionAlert(notes.twoFactor) : ''}
          ${
            twoFactor.enrolled
              ? html`<p>
                    <strong>On.</strong> Signing in asks for a code from your authenticator app too, whichever
                    way you sign in. ${twoFactor.recoveryCodesLeft} recovery code(s) left.
                  </p>
                  <form method="post" action="/account/two-factor/disable" novalidate>
                    ${csrfField(request.session)}
                    ${textField('Code from your app, or a recovery code', 'code', '', {
                      autocomplete: 'one-time-code',
                      inputmode: 'numeric',
                      required: true,
                      maxlength: 64,
                      ...(notes.twoFactorCode ? { error: notes.twoFactorCode, autofocus: true } : {}),
                    })}
                    <button type="submit" class="danger">Turn off two-factor sign-in</button>
                  </form>`
              : html`<p>
                    <strong>Off.</strong> With it on, signing in also asks for a code from an authenticator
                    app on your phone.
                  </p>
                  ${
                    // Said before it is pressed: the setup asks for a recent sign-in.
                    recentSignIn
                      ? ''
                      : html`<p class="hint" id="two-factor-sign-in-again">
                          You signed in more than ${RECENT_SIGN_IN_MS / 60_000} minutes ago, so you will be
                          asked to sign in again before you set it up.
                        </p>`
                  }
                  ${postButton(
                    request.session,
                    '/account/two-factor/enrol',
                    'Set up two-factor sign-in',
                    recentSignIn ? {} : { describedBy: 'two-factor-sign-in-again' },
                  )}`
          }
        </section>`,
      { status },
    );
  };

  const passwordSection = (request: ConsoleRequest, refusal: PasswordRefusal | undefined) => {
    const at = (field: PasswordRefusal['field']) =>
      refusal?.field === field ? { error: refusal.message, autofocus: true } : {};
    return html`<section aria-labelledby="password">
      <h2 id="password">Password</h2>
      <form method="post" action="/account/password" novalidate>
        ${csrfField(request.session)}
        <input
          type="text"
          name="username"
          value="${profileOf(request).username}"
          autocomplete="username"
          hidden
        />
        ${textField('Current password', 'current_password', '', { type: 'password', autocomplete: 'current-password', required: true, maxlength: MAX_PASSWORD_LENGTH, ...at('current_password') })}
        ${textField('New password', 'new_password', '', { type: 'password', autocomplete: 'new-password', required: true, hint: 'At least 8 characters.', maxlength: MAX_PASSWORD_LENGTH, ...at('new_password') })}
        ${textField('New password again', 'new_password_again', '', { type: 'password', autocomplete: 'new-password', required: true, maxlength: MAX_PASSWORD_LENGTH, ...at('new_password_again') })}
        <button type="submit">Change password</button>
      </form>
    </section>`;
  };

  /**
   * A read-only directory (Alliance Auth) keeps the password: said where the form would be, from the
   * profile the request loaded already (`keptPassword`). Someone whose account there has no usable
   * password (Django's `!…`, which AA gives the accounts EVE SSO makes), or one aa-oidc cannot check
   * (another hasher), signs in with EVE Online even where password sign-in is on: told so, not of a
   * password that does not sign them in. Changed in AA, a password is stored anew with the first
   * hasher of AA's `PASSWORD_HASHERS` (Django's default: PBKDF2, which aa-oidc verifies).
   */
  const elsewherePasswordSection = (
    refusal: PasswordRefusal | undefined,
    { keptPassword }: Pick<UserProfile, 'keptPassword'>,
  ) => {
    const { loginUrl, passwordLogin } = deps.config.directory.allianceAuth;
    const allianceAuth = loginUrl ? html`<a href="${loginUrl}">Alliance Auth</a>` : 'Alliance Auth';
    return html`<section aria-labelledby="password">
      <h2 id="password">Password</h2>
      ${refusal ? sectionAlert(refusal.message) : ''}
      <p>
        ${
          !passwordLogin
            ? html`You sign in here with EVE Online, not a password. Your account is managed in
              ${allianceAuth}.`
            : keptPassword === 'unusable'
              ? html`You sign in here with EVE Online: your Alliance Auth account has no password, so there is
                none to change. Your account is managed in ${allianceAuth}.`
              : keptPassword === 'unverifiable'
                ? html`You sign in here with EVE Online: your Alliance Auth password is stored in a form this
                  service cannot check. Change it in ${allianceAuth} to sign in here with it too.`
                : html`Your password is your Alliance Auth one: change it in ${allianceAuth}, not here.`
        }
      </p>
    </section>`;
  };

  const enrolmentPage = (request: ConsoleRequest, pending: Enrolment, error?: string, status = 400) => {
    request.render(
      'Set up two-factor sign-in',
      html`<h1>Set up two-factor sign-in</h1>
        <ol>
          <li>
            Open an authenticator app (FreeOTP, Aegis, Google Authenticator, 1Password…) and add an account.
          </li>
          <li>Scan this code, or type the key below it.</li>
          <li>Enter the six-digit code the app shows.</li>
        </ol>
        <div class="qr">
          ${{ html: qrSvg(pending.uri, `QR code to add ${deps.branding.name} to an authenticator app`) }}
        </div>
        <p>Key: <code id="totp-secret">${pending.secret.replace(/(.{4})/g, '$1 ').trim()}</code></p>
        <form method="post" action="/account/two-factor/confirm" novalidate>
          ${csrfField(request.session)}
          <input type="hidden" name="enrolment" value="${pending.id}" />
          ${textField('Code from your app', 'code', '', {
            autocomplete: 'one-time-code',
            inputmode: 'numeric',
            required: true,
            maxlength: 10,
            ...(error ? { error, autofocus: true } : {}),
          })}
          <div class="actions">
            <button type="submit">Turn on</button>
            <a href="/account#two-factor">Cancel</a>
          </div>
        </form>`,
      { status: error ? status : 200 },
    );
  };

  /**
   * The answer to a two-factor setup (`started`: its confirmation) from a session signed in too long
   * ago: why, and the way on, a sign-in that asks again and returns to the two-factor section.
   */
  const signInAgainPage = (request: ConsoleRequest, started: boolean) =>
    request.render(
      'Sign in again to turn on two-factor sign-in',
      html`<h1>Sign in again to turn on two-factor sign-in</h1>
        <p class="warn" role="status">
          You signed in more than ${RECENT_SIGN_IN_MS / 60_000} minutes ago. Turning on two-factor sign-in
          changes how you sign in from now on, so it asks for a recent sign-in: someone who finds this browser
          still signed in cannot turn it on with an app of their own and lock you out.
        </p>
        ${
          started
            ? html`<p>Nothing was turned on. After signing in, set it up again and scan the new code.</p>`
            : ''
        }
        <div class="actions">
          <a class="button" href="${signInAgainPath('/account#two-factor')}">Sign in again</a>
          <a href="/account#two-factor">Cancel</a>
        </div>`,
      { status: 403 },
    );

  const recoveryCodesPage = (request: ConsoleRequest, recoveryCodes: readonly string[]) =>
    request.render(
      'Two-factor sign-in is on',
      html`<h1>Two-factor sign-in is on</h1>
        <p class="warn" role="status">
          Keep these recovery codes somewhere safe: each signs you in once without your phone. They are shown
          only now.
        </p>
        <ul class="codes" id="recovery-codes">
          ${recoveryCodes.map((code) => html`<li><code>${code}</code></li>`)}
        </ul>
        <p><a class="button" href="/account#two-factor">I have saved them</a></p>`,
    );

  return [
    ...sessionRoutes(deps),
    {
      method: 'GET',
      path: '/account',
      access: 'signed_in',
      handle: (request) => overview(request),
    },
    {
      method: 'POST',
      path: '/account/apps/:clientId/revoke',
      access: 'signed_in',
      async handle(request) {
        const clientId = request.params.clientId ?? '';
        if (clientId !== ACCOUNT_CONSOLE_CLIENT_ID && clientId.length <= 100) {
          const result = await deps.tokens.revokeApplication(profileOf(request).id, clientId, {
            note: 'revoked by the user on the account page',
          });
          if (result.revoked.length > 0 || result.grantsRemoved > 0)
            return request.seeOther('/account?done=revoked#apps');
        }
        // Nothing of the user's there (never allowed, or revoked already): nothing was sent.
        request.seeOther('/account?done=nothing-held#apps');
      },
    },
    {
      method: 'POST',
      path: '/account/password',
      access: 'signed_in',
      async handle(request) {
        const profile = profileOf(request);
        // Both whole: a current password longer than any fails as a wrong one (verifyPassword), and a
        // new one too long for sign-in is refused below, naming the limit; neither is cut short.
        const current = request.form.get('current_password') ?? '';
        const next = request.form.get('new_password') ?? '';
        const again = request.form.get('new_password_again') ?? '';
        const refuse = (field: PasswordRefusal['field'], message: string, status = 400) =>
          overview(request, { password: { field, message } }, status);
        const admin = deps.directoryAdmin;
        // A form this page never offers (forged, or older than the directory): the read-only directory
        // named as the rest of the page names it.
        if (!admin)
          return refuse('current_password', 'Passwords are managed by Alliance Auth, not here.', 409);
        // Refused before an attempt is counted or a hash checked: an empty field is no guess, and the new
        // password's own rules, or its being the current one typed again, tell no secret.
        if (current === '') return refuse('current_password', 'Type your current password.');
        if (next === '') return refuse('new_password', 'Type the new password.');
        if (!sameText(normalizePassword(next), normalizePassword(again)))
          return refuse('new_password_again', 'The two new passwords differ.');
        try {
          validateNewPassword(next);
        } catch (error) {
          if (error instanceof DirectoryError) return refuse('new_password', error.message);
          throw error;
        }
        // Right or wrong, the current one typed again as the new one changes nothing but would end the
        // other sessions: said at once, whether the current one is right never checked.
        if (sameText(normalizePassword(next), normalizePassword(current)))
          return refuse(
            'new_password',
            'The new password is the current one typed again: choose another one.',
          );
        const attempt = await deps.throttle.reserve(profile.username, request.ctx.ip);
        if (!attempt) return refuse('current_password', THROTTLED, 429);
        // Our database failing between the reservation and the check gives the place back, if it can.
        const check = await askReleasingIfUnanswered(
          deps.throttle,
          attempt,
          deps.logger,
          { page: 'account' },
          () => admin.verifyPassword(profile.username, current),
        );
        if (check.outcome !== 'valid' || check.user.id !== profile.id)
          return refuse('current_password', 'The current password is wrong.', 401);
        await deps.throttle.succeeded(attempt);
        try {
          // The person's other sessions end; the one they are using stays.
          await admin.setPassword({ id: profile.id }, next, {
            actor: `self:${profile.username}`,
            ...(request.session ? { keepSession: request.session.uid } : {}),
          });
        } catch (error) {
          // Of the new password: checked above already, and again here by the one write path.
          if (error instanceof DirectoryError) return refuse('new_password', error.message);
          throw error;
        }
        request.seeOther('/account?done=password#password');
      },
    },
    {
      method: 'POST',
      path: '/account/two-factor/enrol',
      access: 'signed_in',
      async handle(request) {
        if (!signedInRecently(request.session!)) return signInAgainPage(request, false);
        try {
          enrolmentPage(request, await deps.twoFactor.beginEnrolment(who(request)));
        } catch (error) {
          if (!(error instanceof TwoFactorError)) throw error;
          await overview(request, { twoFactor: error.message }, 409);
        }
      },
    },
    {
      method: 'POST',
      path: '/account/two-factor/confirm',
      access: 'signed_in',
      async handle(request) {
        const user = who(request);
        const code = request.form.get('code') ?? '';
        const shown = request.form.get('enrolment');
        // The browser session that confirms: only it may be shown the same recovery codes again.
        const confirmer = request.session!.uid;
        const pending = await deps.twoFactor.pendingEnrolment(user);
        if (!pending) {
          // This very form, sent again by this browser just now (a double click or a resend without
          // script, the first answer never seen): the same recovery codes, under the throttle.
          const confirmation = await deps.twoFactor.confirmedJustNowBy(user.id, shown, confirmer);
          // A code that is none cannot be the one that confirmed: no attempt counted for it.
          if (!confirmation || !isCodeShaped(code, { recovery: false }))
            return request.seeOther('/account#two-factor');
          const attempt = await deps.throttle.reserveCode(user.id, request.ctx.ip);
          // Said, as at the first confirmation: a quiet redirect would lose the codes unexplained.
          if (!attempt) return overview(request, { twoFactor: THROTTLED }, 429);
          const repeated = await confirmation.repeat(code);
          if (!repeated.ok) return request.seeOther('/account#two-factor');
          await deps.throttle.succeeded(attempt);
          return recoveryCodesPage(request, repeated.recoveryCodes);
        }
        // Confirming turns it on: the sign-in must be recent still (a repeat above only shows again
        // what this browser's confirmation, recent then, stored a moment ago).
        if (!signedInRecently(request.session!)) return signInAgainPage(request, true);
        // Started again elsewhere (another page or sign-in) since this page showed its code: that
        // secret is not shown here; the person starts again.
        if (!isShownEnrolment(pending, shown))
          return overview(
            request,
            {
              twoFactor:
                'Two-factor enrolment was started again elsewhere since that page was shown. Start again, and scan the new code.',
            },
            409,
          );
        // Nothing typed, or no code: said so, and no attempt counted (it can be no guess).
        if (!isCodeShaped(code, { recovery: false }))
          return enrolmentPage(request, pending, codeShapeMessage({ recovery: false }));
        const attempt = await deps.throttle.reserveCode(user.id, request.ctx.ip);
        if (!attempt) return enrolmentPage(request, pending, THROTTLED, 429);
        let result = await deps.twoFactor.confirmEnrolment(user, code, pending.id, confirmer);
        // Confirmed meanwhile by the same form sent twice at once: the codes that one stored.
        if (!result.ok) result = await deps.twoFactor.repeatConfirmation(user, code, pending.id, confirmer);
        if (!result.ok)
          return enrolmentPage(
            request,
            pending,
            'That code is not the one your app shows now. Check the app, then try the next code.',
          );
        await deps.throttle.succeeded(attempt);
        recoveryCodesPage(request, result.recoveryCodes);
      },
    },
    {
      method: 'POST',
      path: '/account/two-factor/disable',
      access: 'signed_in',
      async handle(request) {
        const user = who(request);
        // Nothing to turn off (already off, or turned off in another tab): no code to check, no attempt used.
        if (!(await deps.twoFactor.status(user.id)).enrolled)
          return overview(
            request,
            { twoFactor: 'Two-factor sign-in is not on, so there is nothing to turn off.' },
            409,
          );
        const refuse = (message: string, status: number) =>
          overview(request, { twoFactorCode: message }, status);
        const code = request.form.get('code') ?? '';
        // Nothing typed, or no code: said so, and no attempt counted (it can be no guess).
        if (!isCodeShaped(code, { recovery: true })) return refuse(codeShapeMessage({ recovery: true }), 400);
        const attempt = await deps.throttle.reserveCode(user.id, request.ctx.ip);
        if (!attempt) return refuse(THROTTLED, 429);
        const result = await deps.twoFactor.disable(user, code);
        // A code from the app while the secret cannot be decrypted: not checked, so no wrong code.
        if (!result.ok && result.reason === 'unreadable_secret')
          return refuse(UNREADABLE_SECRET_MESSAGE, 409);
        if (!result.ok) {
          // Told as a refused code at sign-in is: whoever holds this session tried to turn it off.
          tellRefusedCode(deps, request.ctx, {
            at: 'account_page',
            userId: user.id,
            clientId: ACCOUNT_CONSOLE_CLIENT_ID,
            code,
            reason: result.reason,
            firstFactor: request.session!.amr,
          });
          return refuse('That code is not valid. Two-factor sign-in is still on.', 401);
        }
        await deps.throttle.succeeded(attempt);
        request.seeOther('/account?done=two-factor-off#two-factor');
      },
    },
  ];
}
