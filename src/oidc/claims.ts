import type { Config } from '../config/load.ts';
import type { UserProfile } from '../directory/port.ts';

/** The configuration the claims depend on. */
export type ClaimsConfig = Pick<
  Config['oidc'],
  'claimPrefix' | 'eveClaimsScope' | 'portraitUrlTemplate' | 'portraitSize'
>;

export type ClaimValue = string | number | boolean | string[] | Record<string, unknown>;
export type Claims = { sub: string } & Record<string, ClaimValue>;

/** At most this many group names go into `groups` (the state name comes after them). */
export const MAX_GROUP_CLAIMS = 256;

const STANDARD_SCOPE_CLAIMS: Readonly<Record<string, readonly string[]>> = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  // `groups` under `profile` as the Python plugin releases it (RPs set up for the plugin ask
  // `openid profile email`); the `groups` scope releases it too, for RPs that ask by that name.
  profile: ['name', 'preferred_username', 'picture', 'locale', 'groups'],
  groups: ['groups'],
};

/** The EVE claim names, with the configured prefix. */
export function eveClaimNames(config: Pick<ClaimsConfig, 'claimPrefix'>): string[] {
  const p = config.claimPrefix;
  return [
    `${p}character_id`,
    `${p}main_character_id`,
    `${p}corporation_id`,
    `${p}corporation_name`,
    `${p}corporation_ticker`,
    `${p}alliance_id`,
    `${p}alliance_name`,
    `${p}alliance_ticker`,
    `${p}faction_id`,
    `${p}faction_name`,
    `${p}affiliation`,
  ];
}

/**
 * Which claims each scope releases, for the provider's `claims` configuration (and for anyone who
 * must filter claims by scope the same way). Only the configured scopes appear.
 */
export function scopeClaims(config: ClaimsConfig, scopes: readonly string[]): Record<string, string[]> {
  const mapping: Record<string, string[]> = {};
  for (const scope of scopes) {
    const claims = new Set(STANDARD_SCOPE_CLAIMS[scope] ?? []);
    if (scope === config.eveClaimsScope) for (const name of eveClaimNames(config)) claims.add(name);
    if (scope === 'offline_access' && claims.size === 0) continue;
    mapping[scope] = [...claims];
  }
  return mapping;
}

/**
 * The one claims function: what `profile` yields for the granted `scopes`.
 * Serves userinfo, the claims parameter, and JWT access tokens alike, so that every path releases
 * the same values. Empty values are omitted, never null.
 */
export function claimsFor(profile: UserProfile, scopes: Iterable<string>, config: ClaimsConfig): Claims {
  const granted = new Set(scopes);
  const { state, groups, mainCharacter: character } = profile;
  const claims: Claims = { sub: String(profile.id) };
  const put = (name: string, value: ClaimValue | null | undefined): void => {
    if (value === null || value === undefined) return;
    if (typeof value === 'string' && value.length === 0) return;
    if (Array.isArray(value) && value.length === 0) return;
    if (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0) return;
    claims[name] = value;
  };

  if (granted.has('email')) {
    const email = profile.email.trim();
    if (email.length > 0) {
      put('email', email);
      put('email_verified', profile.emailVerified);
    }
  }

  if (granted.has('profile')) {
    put('name', nonEmpty(character.characterName));
    put('preferred_username', nonEmpty(profile.username));
    put('picture', portraitUrl(character.characterId, config));
    put('locale', nonEmpty(profile.locale));
  }

  if (granted.has('groups') || granted.has('profile')) {
    const names = groups
      .map((group) => group.name)
      .sort(compareNames)
      .slice(0, MAX_GROUP_CLAIMS);
    if (state) names.push(state.name);
    put('groups', names);
  }

  if (granted.has(config.eveClaimsScope)) {
    const p = config.claimPrefix;
    put(`${p}character_id`, character.characterId);
    put(`${p}main_character_id`, character.characterId);
    put(`${p}corporation_id`, character.corporationId);
    put(`${p}corporation_name`, nonEmpty(character.corporationName));
    put(`${p}corporation_ticker`, nonEmpty(character.corporationTicker));
    put(`${p}alliance_id`, character.allianceId);
    put(`${p}alliance_name`, nonEmpty(character.allianceName));
    put(`${p}alliance_ticker`, nonEmpty(character.allianceTicker));
    put(`${p}faction_id`, character.factionId);
    put(`${p}faction_name`, nonEmpty(character.factionName));
    put(
      `${p}affiliation`,
      compact({
        corp: compact({
          id: character.corporationId,
          name: nonEmpty(character.corporationName),
          ticker: nonEmpty(character.corporationTicker),
        }),
        alliance: compact({
          id: character.allianceId,
          name: nonEmpty(character.allianceName),
          ticker: nonEmpty(character.allianceTicker),
        }),
        faction: compact({ id: character.factionId, name: nonEmpty(character.factionName) }),
        state: state?.name,
      }),
    );
  }
  return claims;
}

/** The portrait URL for a character, or undefined without one. */
export function portraitUrl(
  characterId: number | null,
  config: Pick<ClaimsConfig, 'portraitUrlTemplate' | 'portraitSize'>,
): string | undefined {
  if (characterId === null || characterId === undefined) return undefined;
  return config.portraitUrlTemplate
    .replaceAll('{character_id}', encodeURIComponent(String(characterId)))
    .replaceAll('{size}', String(config.portraitSize));
}

function nonEmpty(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed.length > 0 ? trimmed : undefined;
}

/**
 * The object without its null, undefined and empty members; undefined when nothing is left. A loop
 * rather than entries, filter and fromEntries: userinfo builds four of these per request.
 */
function compact(value: Record<string, unknown>): Record<string, unknown> | undefined {
  let kept: Record<string, unknown> | undefined;
  for (const key in value) {
    const member = value[key];
    if (member === null || member === undefined) continue;
    if (typeof member === 'string' && member.length === 0) continue;
    if (typeof member === 'object' && Object.keys(member).length === 0) continue;
    (kept ??= {})[key] = member;
  }
  return kept;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
