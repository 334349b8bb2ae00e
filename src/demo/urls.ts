/** The demo application's fixed client_id: `aa-oidc demo` finds it again on every run by this id. */
export const DEMO_CLIENT_ID = 'aa-oidc-demo';
export const DEMO_CLIENT_NAME = 'aa-oidc demo relying party';

/**
 * The site the provider is part of: the issuer without its final `/o` (the provider is put
 * at `https://HOST/o`). The demo relying party lives beside it, at `${base}/demo/`.
 */
export function siteBase(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, '').replace(/\/o$/, '');
  return `${url.origin}${path}`;
}

export interface DemoUrls {
  /** Where a person starts: `${base}/demo/`. */
  start: string;
  /** The registered redirect URI: `${base}/demo/callback`. */
  callback: string;
  /** The path prefix the routes answer under, without trailing slash: `/demo` (or `/prefix/demo`). */
  pathPrefix: string;
}

export function demoUrls(issuer: string): DemoUrls {
  const base = siteBase(issuer);
  return {
    start: `${base}/demo/`,
    callback: `${base}/demo/callback`,
    pathPrefix: `${new URL(base).pathname.replace(/\/+$/, '')}/demo`,
  };
}
