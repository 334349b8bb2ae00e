import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROVIDER_ROUTES } from '../../src/oidc/mount.ts';
import { mayBeIntrospectionOrDiscovery, mayBeTokenOrAuthorization } from '../../src/oidc/provider.ts';

/** A route as the provider's router may see it: as is, without its trailing slash, upper-case, extended. */
function spellings(route: string): string[] {
  return [route, route.replace(/\/$/, ''), route.toUpperCase(), `${route}x`];
}

describe('the layer that runs once the provider has answered', () => {
  it('looks at every path the provider may route to introspection, discovery or the JWKS, in any case', () => {
    for (const route of [
      PROVIDER_ROUTES.introspection,
      PROVIDER_ROUTES.jwks,
      '/.well-known/openid-configuration',
    ]) {
      for (const path of spellings(route)) assert.ok(mayBeIntrospectionOrDiscovery(path), path);
    }
  });

  it('lets the token, userinfo, authorization, revocation and logout requests pass without waiting', () => {
    for (const route of [
      PROVIDER_ROUTES.token,
      PROVIDER_ROUTES.userinfo,
      PROVIDER_ROUTES.authorization,
      PROVIDER_ROUTES.revocation,
      PROVIDER_ROUTES.end_session,
      '/',
      '',
    ])
      assert.equal(mayBeIntrospectionOrDiscovery(route), false, route);
  });
});

describe('the layer that holds back the writes of code exchanges, refreshes and authorization requests', () => {
  it('looks at every path the provider may route to the token endpoint or an authorization, in any case', () => {
    for (const route of [PROVIDER_ROUTES.token, PROVIDER_ROUTES.authorization]) {
      for (const path of spellings(route)) assert.ok(mayBeTokenOrAuthorization(path), path);
    }
  });

  it('lets userinfo, introspection, revocation, logout, discovery and the JWKS pass without a step', () => {
    for (const route of [
      PROVIDER_ROUTES.userinfo,
      PROVIDER_ROUTES.introspection,
      PROVIDER_ROUTES.revocation,
      PROVIDER_ROUTES.end_session,
      PROVIDER_ROUTES.jwks,
      '/.well-known/openid-configuration',
      '/',
      '',
    ])
      assert.equal(mayBeTokenOrAuthorization(route), false, route);
  });
});
