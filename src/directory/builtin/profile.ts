import type { GroupRow, StateRow, UserRow } from '../../db/schema.ts';
import type { DirectoryGroup, DirectoryState, UserProfile } from '../port.ts';
import type { UserRecord } from './types.ts';

export function toDirectoryState(state: StateRow): DirectoryState {
  return { name: state.name, priority: state.priority, oidcAccess: state.oidc_access === 1 };
}

export function toDirectoryGroup(group: GroupRow): DirectoryGroup {
  return { name: group.name, oidcAccess: group.oidc_access === 1 };
}

function toProfileUser(user: UserRow): Omit<UserProfile, 'state' | 'groups'> {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    emailVerified: user.email_verified === 1,
    active: user.active === 1,
    superuser: user.superuser === 1,
    oidcAccess: user.oidc_access === 1,
    locale: user.locale,
    mainCharacter: {
      characterId: user.character_id,
      characterName: user.character_name,
      corporationId: user.corporation_id,
      corporationName: user.corporation_name,
      corporationTicker: user.corporation_ticker,
      allianceId: user.alliance_id,
      allianceName: user.alliance_name,
      allianceTicker: user.alliance_ticker,
      factionId: user.faction_id,
      factionName: user.faction_name,
    },
  };
}

/** The port's plain profile of a built-in record (groups keep the record's order: by name). */
export function toUserProfile(record: UserRecord): UserProfile {
  return {
    ...toProfileUser(record.user),
    state: record.state ? toDirectoryState(record.state) : null,
    groups: record.groups.map(toDirectoryGroup),
  };
}
