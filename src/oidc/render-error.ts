import type { Configuration } from 'oidc-provider';
import { pagePolicy, setPageHeaders } from '../http/content-security-policy.ts';
import type { Branding } from '../http/pages/branding.ts';
import { errorPage } from '../http/pages/error.ts';
import { pageContext } from '../http/pages/layout.ts';

type RenderError = NonNullable<Configuration['renderError']>;

/**
 * The provider's `renderError` hook: an error that cannot go back to the client as a redirect,
 * rendered as a page (with the request id, for support). `out` is the provider's public form of the
 * error (server errors arrive as a bare `server_error` with a generic description), so nothing
 * internal reaches the page. The provider renders it on any endpoint a browser asks (userinfo or
 * token opened in a tab too), not only on those mount.ts gives the page headers: it sets them.
 */
export function renderError(branding: Branding): RenderError {
  return async (ctx, out) => {
    setPageHeaders(ctx, pagePolicy());
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = errorPage(
      {
        error: typeof out.error === 'string' ? out.error : 'server_error',
        description: out.error === 'server_error' ? undefined : out.error_description,
        status: ctx.status,
      },
      pageContext(branding, ctx),
    );
  };
}
