/** What each scope lets an application see, as the consent page and the account page tell a member. */
const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  openid: 'your account identifier',
  profile: "your username, groups and state, and your main character's name and portrait",
  email: 'your email address',
  groups: 'your groups and state',
  offline_access: 'access while you are not signed in',
};

const EVE_CLAIMS = "your main character's corporation, alliance and faction";

/**
 * What `scope` gives the application; the scope of the EVE claims (`oidc.eveClaimsScope`) gives the
 * main character's corporation, alliance and faction as well. `start`: as a line of its own (the
 * consent page's list), capitalised; `within`: inside a sentence (the account page's "Can see …"). A
 * scope without a description is named as it is.
 */
export function scopeDescription(scope: string, eveClaimsScope: string, at: 'start' | 'within'): string {
  const described = SCOPE_DESCRIPTIONS[scope];
  const text = scope !== eveClaimsScope ? described : described ? `${described}; ${EVE_CLAIMS}` : EVE_CLAIMS;
  if (text === undefined) return scope;
  return at === 'start' ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}
