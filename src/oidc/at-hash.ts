import type { Provider } from 'oidc-provider';

interface SavedToken {
  save(this: object, ...args: unknown[]): Promise<string | undefined>;
}

interface IssuedIdToken {
  extra: Record<string, unknown>;
  ctx?: { oidc?: { entities?: { AccessToken?: object } } };
  set(key: string, value: unknown): void;
  issue(this: IssuedIdToken, options?: { use?: string }): Promise<string>;
}

/**
 * The id_token of a token response carries `at_hash`, as the Python plugin's did (django-oauth-
 * toolkit sets it whenever it issues an access token with the id_token), so relying parties that
 * check it keep working. oidc-provider 9 sets `at_hash` only for id_tokens issued at the
 * authorization endpoint; at the token endpoint (code and refresh grants) it leaves it out, which
 * OIDC Core §3.1.3.6 allows.
 *
 * The access token's value exists only as the return value of `AccessToken#save()` (for a JWT
 * access token it is not the stored id), so this provider's AccessToken class remembers it per
 * instance, and its IdToken class, when issuing an id_token in a request whose AccessToken entity
 * has a remembered value, sets `at_hash` from it; IdToken#issue hashes it (left half of the SHA-256
 * for RS256).
 */
export function installAccessTokenHash(provider: Provider): void {
  const values = new WeakMap<object, string>();

  const accessToken = (provider.AccessToken as unknown as { prototype: SavedToken }).prototype;
  const save = accessToken.save;
  accessToken.save = async function saveAndRemember(this: object, ...args: unknown[]) {
    const value = await save.apply(this, args);
    if (typeof value === 'string') values.set(this, value);
    return value;
  };

  const idToken = (provider.IdToken as unknown as { prototype: IssuedIdToken }).prototype;
  const issue = idToken.issue;
  idToken.issue = function issueWithAccessTokenHash(this: IssuedIdToken, options) {
    const entity = this.ctx?.oidc?.entities?.AccessToken;
    const value = entity ? values.get(entity) : undefined;
    if (options?.use === 'idtoken' && value !== undefined && this.extra.at_hash === undefined)
      this.set('at_hash', value);
    return issue.call(this, options);
  };
}
