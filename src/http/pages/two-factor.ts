import { html, type Html, page, type PageContext } from './layout.ts';
import { SEND_ONCE_SCRIPT } from './send-once.ts';

/** The interaction's policy allows it by its hash (oidc/interactions/routes.ts). */
const sendOnce: Html = { html: `<script>${SEND_ONCE_SCRIPT}</script>` };

/**
 * The login's second step: the code from the authenticator app (or a recovery code), and, when
 * superusers must use two-factor sign-in and this one has not set it up, the enrolment itself.
 * Every form carries the interaction's CSRF token and the signed state of the sign-in so far.
 */
interface StepForm {
  action: string;
  csrfToken: string;
  /** The signed sign-in state (which user passed the password step, until when). */
  pending: string;
  clientName: string;
  error?: string;
}

function hidden(form: StepForm): Html {
  return html`<input type="hidden" name="csrf_token" value="${form.csrfToken}" />
    <input type="hidden" name="pending" value="${form.pending}" />`;
}

function codeField(label: string, error: string | undefined): Html {
  return html`<label for="code">${label}</label>
    <input
      type="text"
      id="code"
      name="code"
      autocomplete="one-time-code"
      inputmode="numeric"
      autocapitalize="none"
      spellcheck="false"
      required
      maxlength="64"
      autofocus
      ${error ? html`aria-invalid="true" aria-describedby="code-error"` : ''}
    />
    ${error ? html`<p class="field-error" id="code-error" role="alert">${error}</p>` : ''}`;
}

export function twoFactorCodePage(form: StepForm, context: PageContext): string {
  return page(
    'Two-factor sign-in',
    html`<h1>Enter your code</h1>
      <p>to continue to <strong>${form.clientName}</strong></p>
      <form method="post" action="${form.action}" novalidate>
        ${hidden(form)} ${codeField('Six-digit code from your authenticator app', form.error)}
        <p class="hint">Lost your phone? Enter one of your recovery codes instead.</p>
        <button type="submit">Continue</button>
      </form>
      ${sendOnce}`,
    { branding: context.branding },
  );
}

export function twoFactorEnrolPage(
  form: StepForm & { qrSvg: string; secret: string },
  context: PageContext,
): string {
  return page(
    'Set up two-factor sign-in',
    html`<h1>Set up two-factor sign-in</h1>
      <p>Administrators of ${context.branding.name} sign in with a code from an authenticator app as well.</p>
      <ol>
        <li>Add an account in your authenticator app by scanning this code, or by typing the key.</li>
        <li>Enter the six-digit code it shows.</li>
      </ol>
      <div class="qr">${{ html: form.qrSvg }}</div>
      <p>Key: <code id="totp-secret">${form.secret.replace(/(.{4})/g, '$1 ').trim()}</code></p>
      <form method="post" action="${form.action}" novalidate>
        ${hidden(form)} ${codeField('Code from your app', form.error)}
        <button type="submit">Turn on and continue</button>
      </form>
      ${sendOnce}`,
    { branding: context.branding },
  );
}

export function recoveryCodesPage(
  form: StepForm & { codes: readonly string[] },
  context: PageContext,
): string {
  return page(
    'Recovery codes',
    html`<h1>Save your recovery codes</h1>
      <p class="warn" role="status">
        Each code signs you in once without your phone. Keep them somewhere safe: they are shown only now.
      </p>
      <ul class="codes" id="recovery-codes">
        ${form.codes.map((code) => html`<li><code>${code}</code></li>`)}
      </ul>
      <form method="post" action="${form.action}">
        ${hidden(form)}
        <button type="submit">I have saved them, continue</button>
      </form>
      ${sendOnce}`,
    { branding: context.branding },
  );
}
