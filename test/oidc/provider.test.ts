import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROVIDER_ROUTES } from '../../src/oidc/mount.ts';
import { mayBeIntrospectionOrDiscovery } from '../../src/oidc/provider.ts';

describe('the layer that runs once the provider has answered', () => {
  it('looks at every path the provider may route to introspection, discovery or the JWKS, in any case', () => {
    for (const route of [
      PROVIDER_ROUTES.introspection,
      PROVIDER_ROUTES.jwks,
      '/.well-known/openid-configuration',
    ]) {
      for (const path of [route, route.replace(/\/$/, ''), route.toUpperCase(), `${route}x`])
        assert.ok(mayBeIntrospectionOrDiscovery(path), path);
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
