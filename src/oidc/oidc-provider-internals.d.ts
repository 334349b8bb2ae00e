// oidc-provider's endpoint middleware lists (see provider-internals.ts); the package has no
// `exports` map, so these modules resolve, but it ships no types for them.
declare module 'oidc-provider/lib/actions/introspection.js' {
  const stack: unknown[];
  export default stack;
}
declare module 'oidc-provider/lib/actions/revocation.js' {
  const stack: unknown[];
  export default stack;
}
declare module 'oidc-provider/lib/actions/end_session.js' {
  export const confirm: unknown[];
}
declare module 'oidc-provider/lib/actions/userinfo.js' {
  const stack: unknown[];
  export default stack;
}
declare module 'oidc-provider/lib/helpers/als.js' {
  import type { AsyncLocalStorage } from 'node:async_hooks';
  const als: AsyncLocalStorage<unknown>;
  export default als;
}
declare module 'oidc-provider/lib/helpers/certificate_thumbprint.js' {
  export default function certificateThumbprint(cert: unknown): string;
}
declare module 'oidc-provider/lib/helpers/configuration_result.js' {
  export function account<T>(value: T): T;
}
declare module 'oidc-provider/lib/helpers/revoke.js' {
  export default function revoke(ctx: unknown, grantId: string | undefined): Promise<void>;
}
declare module 'oidc-provider/lib/helpers/validate_dpop.js' {
  export default function dpopValidate(
    provider: unknown,
    ctx: unknown,
    accessToken?: string,
  ): Promise<{ thumbprint: string } | undefined>;
  export function checkDpopReplay(
    provider: unknown,
    ctx: unknown,
    dPoP: unknown,
    clientId: string,
    ErrorClass: unknown,
  ): Promise<void>;
}
declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  export default function instance(provider: unknown): {
    configuration: { findAccount(ctx: unknown, sub: string, token?: unknown): Promise<unknown> };
    features: { mTLS: { getCertificate(ctx: unknown): unknown } };
    grantTypeHandlers: Map<string, (ctx: unknown) => Promise<void>>;
    /** `lib/helpers/router.js`: the route a method and a path match, undefined when none does. */
    router?: { match(method: string, path: string): unknown };
  };
}
