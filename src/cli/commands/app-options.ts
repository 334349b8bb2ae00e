import type {
  AccessTokenFormatSetting,
  Application,
  ApplicationInput,
  ApplicationPatch,
  GrantType,
} from '../../applications/types.ts';
import { CliError } from '../context.ts';
import { type OutputFormat, quotedInput } from '../output.ts';

/** `aa-oidc app create` and `update`: their options, turned into the application service's input. */

/** `--x a --x b` → ['a', 'b']; absent → undefined (so that "not given" differs from "empty"). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export interface CreateOptions {
  name: string;
  clientId?: string;
  redirectUri?: string[];
  postLogoutRedirectUri?: string[];
  public?: boolean;
  state?: string[];
  group?: string[];
  skipAuthorization?: boolean;
  pkceRequired: boolean;
  accessTokenFormat?: string;
  backchannelLogoutUri?: string;
  backchannelLogoutOnRevokeOnly?: boolean;
  idTokenClaims?: boolean;
  grantType?: string[];
  logoUrl?: string;
  debugMode?: boolean;
  dryRun?: boolean;
  format: OutputFormat;
}

export function createInput(options: CreateOptions): ApplicationInput {
  return {
    clientId: options.clientId,
    name: options.name,
    clientType: options.public ? 'public' : 'confidential',
    redirectUris: options.redirectUri ?? [],
    postLogoutRedirectUris: options.postLogoutRedirectUri,
    states: options.state,
    groups: options.group,
    skipAuthorization: options.skipAuthorization === true,
    pkceRequired: options.pkceRequired,
    accessTokenFormat: options.accessTokenFormat as AccessTokenFormatSetting | undefined,
    backchannelLogoutUri: options.backchannelLogoutUri,
    backchannelLogoutOnRevokeOnly: options.backchannelLogoutOnRevokeOnly === true,
    idTokenClaims: options.idTokenClaims === true,
    grantTypes: options.grantType as GrantType[] | undefined,
    logoUrl: options.logoUrl,
    debugMode: options.debugMode === true,
  };
}

export interface UpdateOptions {
  name?: string;
  logoUrl?: string;
  clearLogoUrl?: boolean;
  redirectUri?: string[];
  addRedirectUri?: string[];
  removeRedirectUri?: string[];
  postLogoutRedirectUri?: string[];
  addPostLogoutRedirectUri?: string[];
  removePostLogoutRedirectUri?: string[];
  clearPostLogoutRedirectUris?: boolean;
  state?: string[];
  addState?: string[];
  removeState?: string[];
  clearStates?: boolean;
  group?: string[];
  addGroup?: string[];
  removeGroup?: string[];
  clearGroups?: boolean;
  grantType?: string[];
  skipAuthorization?: boolean;
  pkceRequired?: boolean;
  debugMode?: boolean;
  backchannelLogoutOnRevokeOnly?: boolean;
  idTokenClaims?: boolean;
  accessTokenFormat?: string;
  backchannelLogoutUri?: string;
  clearBackchannelLogoutUri?: boolean;
  dryRun?: boolean;
}

interface ListEdit {
  /** The option names, for messages. */
  replace: string;
  add: string;
  remove: string;
  clear?: string;
  /** What one item is called, for messages. */
  noun: string;
}

/**
 * Applies `--x` (replace the whole list), then `--add-x`, then `--remove-x` to the current list;
 * `--clear-x` empties it. Undefined when no option touches the list.
 */
function editList(
  current: readonly string[],
  values: { replace?: string[]; add?: string[]; remove?: string[]; clear?: boolean },
  names: ListEdit,
  clientId: string,
): string[] | undefined {
  if (values.replace === undefined && !values.add && !values.remove && !values.clear) return undefined;
  if (values.clear && (values.replace !== undefined || values.add))
    throw new CliError(`--${names.clear} cannot be combined with --${names.replace} or --${names.add}`);
  let list = values.clear ? [] : [...(values.replace ?? current)];
  for (const item of values.add ?? []) if (!list.includes(item)) list.push(item);
  for (const item of values.remove ?? []) {
    if (!list.includes(item))
      throw new CliError(`--${names.remove}: ${quotedInput(item)} is not a ${names.noun} of ${clientId}`);
    list = list.filter((existing) => existing !== item);
  }
  return list;
}

export function updatePatch(current: Application, options: UpdateOptions): ApplicationPatch {
  const clientId = current.clientId;
  if (options.logoUrl !== undefined && options.clearLogoUrl)
    throw new CliError('--logo-url cannot be combined with --clear-logo-url');
  if (options.backchannelLogoutUri !== undefined && options.clearBackchannelLogoutUri)
    throw new CliError('--backchannel-logout-uri cannot be combined with --clear-backchannel-logout-uri');
  const patch: ApplicationPatch = {
    name: options.name,
    logoUrl: options.clearLogoUrl ? null : options.logoUrl,
    redirectUris: editList(
      current.redirectUris,
      { replace: options.redirectUri, add: options.addRedirectUri, remove: options.removeRedirectUri },
      {
        replace: 'redirect-uri',
        add: 'add-redirect-uri',
        remove: 'remove-redirect-uri',
        noun: 'redirect URI',
      },
      clientId,
    ),
    postLogoutRedirectUris: editList(
      current.postLogoutRedirectUris,
      {
        replace: options.postLogoutRedirectUri,
        add: options.addPostLogoutRedirectUri,
        remove: options.removePostLogoutRedirectUri,
        clear: options.clearPostLogoutRedirectUris,
      },
      {
        replace: 'post-logout-redirect-uri',
        add: 'add-post-logout-redirect-uri',
        remove: 'remove-post-logout-redirect-uri',
        clear: 'clear-post-logout-redirect-uris',
        noun: 'post-logout redirect URI',
      },
      clientId,
    ),
    states: editList(
      current.states,
      {
        replace: options.state,
        add: options.addState,
        remove: options.removeState,
        clear: options.clearStates,
      },
      {
        replace: 'state',
        add: 'add-state',
        remove: 'remove-state',
        clear: 'clear-states',
        noun: 'whitelisted state',
      },
      clientId,
    ),
    groups: editList(
      current.groups,
      {
        replace: options.group,
        add: options.addGroup,
        remove: options.removeGroup,
        clear: options.clearGroups,
      },
      {
        replace: 'group',
        add: 'add-group',
        remove: 'remove-group',
        clear: 'clear-groups',
        noun: 'whitelisted group',
      },
      clientId,
    ),
    grantTypes: options.grantType as GrantType[] | undefined,
    skipAuthorization: options.skipAuthorization,
    pkceRequired: options.pkceRequired,
    debugMode: options.debugMode,
    backchannelLogoutOnRevokeOnly: options.backchannelLogoutOnRevokeOnly,
    idTokenClaims: options.idTokenClaims,
    accessTokenFormat: options.accessTokenFormat as AccessTokenFormatSetting | undefined,
    backchannelLogoutUri: options.clearBackchannelLogoutUri ? null : options.backchannelLogoutUri,
  };
  if (Object.values(patch).every((value) => value === undefined))
    throw new CliError('nothing to update: give at least one option (see `aa-oidc app update --help`)');
  return patch;
}
