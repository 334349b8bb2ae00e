import { html, page, type PageContext } from './layout.ts';

export interface ConsentPageInput {
  action: string;
  csrfToken: string;
  clientName: string;
  /** The application's logo (`--logo-url`), shown beside its name. */
  logoUrl?: string | null;
  username: string;
  /** Scopes to grant, with a human description each. */
  scopes: Array<{ name: string; description: string }>;
  /** Individual claims asked for through the claims parameter. */
  claims: string[];
}

export function consentPage(input: ConsentPageInput, context: PageContext): string {
  return page(
    'Allow access',
    html`${input.logoUrl ? html`<img class="logo" src="${input.logoUrl}" alt="${input.clientName} logo" />` : ''}
      <h1>Allow access?</h1>
      <p><strong>${input.clientName}</strong> asks to use your account <strong>${input.username}</strong>.</p>
      ${
        input.scopes.length > 0
          ? html`<h2>It will receive</h2>
              <ul>
                ${input.scopes.map((scope) => html`<li>${scope.description} <small>(${scope.name})</small></li>`)}
              </ul>`
          : ''
      }
      ${
        input.claims.length > 0
          ? html`<h2>And these details</h2>
              <ul>
                ${input.claims.map((claim) => html`<li>${claim}</li>`)}
              </ul>`
          : ''
      }
      <form method="post" action="${input.action}">
        <input type="hidden" name="csrf_token" value="${input.csrfToken}" />
        <div class="actions">
          <button type="submit" name="decision" value="allow">Allow</button>
          <button type="submit" name="decision" value="deny" class="secondary">Deny</button>
        </div>
      </form>`,
    { branding: context.branding },
  );
}
