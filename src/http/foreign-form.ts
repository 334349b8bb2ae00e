import type Koa from 'koa';

/**
 * Whether the browser says a form post comes from somewhere other than the issuer's origin: a
 * `Sec-Fetch-Site` other than `same-origin` (`same-site` included: another host of the same domain
 * is not ours to trust, and `none` is no page of ours), or an `Origin` other than the issuer's
 * (`null` included, unless `Sec-Fetch-Site` says `same-origin`: a browser sends `Origin: null` on a
 * page's own form post where a privacy setting or extension makes the referrer policy `no-referrer`,
 * while a sandboxed or redirected post from another site is `cross-site`). Defence in depth beside
 * the CSRF token, which every form still needs: a request with neither header (curl, an older
 * browser, the bench's browserless login) is not foreign.
 *
 * `issuerOrigin` is the configured issuer's origin (`https://auth.example.org`), never one built
 * from the request: behind a TLS-terminating proxy the request arrives over http on another address,
 * while the browser's `Origin` names the issuer's.
 */
export function isForeignForm(ctx: Koa.Context, issuerOrigin: string): boolean {
  const site = ctx.get('Sec-Fetch-Site');
  const origin = ctx.get('Origin');
  if (site !== '' && site !== 'same-origin') return true;
  if (origin === 'null') return site === '';
  return origin !== '' && origin !== issuerOrigin;
}
