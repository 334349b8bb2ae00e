import { type Command, Option } from 'commander';
import { ApplicationError } from '../../applications/errors.ts';
import type {
  AccessTokenFormatSetting,
  Application,
  ApplicationInput,
  ApplicationPatch,
  ApplicationService,
  GrantType,
} from '../../applications/types.ts';
import { assertNever } from '../../util/assert-never.ts';
import { CliError, type CliIo, cliActor, isoTime, withServices } from '../context.ts';
import { type Column, formatOption, type OutputFormat, renderRows } from '../output.ts';

/** `--x a --x b` → ['a', 'b']; absent → undefined (so that "not given" differs from "empty"). */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function withApplications<T>(io: CliIo, work: (service: ApplicationService) => Promise<T>): Promise<T> {
  return withServices(io, (services) => work(services.applications));
}

/** An application as every output shows it: never the secret, never its digest. */
function applicationJson(app: Application): Record<string, unknown> {
  return {
    client_id: app.clientId,
    name: app.name,
    client_type: app.clientType,
    active: app.active,
    redirect_uris: app.redirectUris,
    post_logout_redirect_uris: app.postLogoutRedirectUris,
    grant_types: app.grantTypes,
    states: app.states,
    groups: app.groups,
    skip_authorization: app.skipAuthorization,
    pkce_required: app.pkceRequired,
    access_token_format: app.accessTokenFormat,
    logo_url: app.logoUrl,
    backchannel_logout_uri: app.backchannelLogoutUri,
    backchannel_logout_on_revoke_only: app.backchannelLogoutOnRevokeOnly,
    debug_mode: app.debugMode,
    created_by: app.createdBy,
    created_at: isoTime(app.createdAt),
    updated_at: isoTime(app.updatedAt),
  };
}

/** URIs cannot hold spaces (validation refuses them), so a space separates them unambiguously. */
const spaced = (items: readonly string[]) => items.join(' ');
const commaSpaced = (items: readonly string[]) => items.join(', ');

const LIST_COLUMNS: readonly Column<Application>[] = [
  { header: 'client_id', value: (app) => app.clientId },
  { header: 'name', value: (app) => app.name },
  { header: 'type', value: (app) => app.clientType },
  { header: 'active', value: (app) => (app.active ? 'yes' : 'no') },
  { header: 'grant_types', value: (app) => spaced(app.grantTypes) },
  { header: 'states', value: (app) => commaSpaced(app.states) },
  { header: 'groups', value: (app) => commaSpaced(app.groups) },
  { header: 'redirect_uris', value: (app) => spaced(app.redirectUris) },
];

/** Every field (for CSV, and for `show`). */
const ALL_COLUMNS: readonly Column<Application>[] = [
  { header: 'client_id', value: (app) => app.clientId },
  { header: 'name', value: (app) => app.name },
  { header: 'client_type', value: (app) => app.clientType },
  { header: 'active', value: (app) => app.active },
  { header: 'redirect_uris', value: (app) => spaced(app.redirectUris) },
  { header: 'post_logout_redirect_uris', value: (app) => spaced(app.postLogoutRedirectUris) },
  { header: 'grant_types', value: (app) => spaced(app.grantTypes) },
  { header: 'states', value: (app) => commaSpaced(app.states) },
  { header: 'groups', value: (app) => commaSpaced(app.groups) },
  { header: 'skip_authorization', value: (app) => app.skipAuthorization },
  { header: 'pkce_required', value: (app) => app.pkceRequired },
  { header: 'access_token_format', value: (app) => app.accessTokenFormat },
  { header: 'logo_url', value: (app) => app.logoUrl },
  { header: 'backchannel_logout_uri', value: (app) => app.backchannelLogoutUri },
  { header: 'backchannel_logout_on_revoke_only', value: (app) => app.backchannelLogoutOnRevokeOnly },
  { header: 'debug_mode', value: (app) => app.debugMode },
  { header: 'created_by', value: (app) => app.createdBy },
  { header: 'created_at', value: (app) => isoTime(app.createdAt) },
  { header: 'updated_at', value: (app) => isoTime(app.updatedAt) },
];

/** `show` in table format: one line per field. */
function describeApplication(app: Application): string {
  const fields = ALL_COLUMNS.map((column) => ({ field: column.header, value: column.value(app) }));
  return renderRows(
    fields,
    [
      { header: 'field', value: (row) => row.field },
      { header: 'value', value: (row) => row.value },
    ],
    'table',
    (row) => row,
  );
}

function secretNotice(clientId: string): string {
  return `  store it now: it will not be shown again (\`aa-oidc app rotate-secret ${clientId}\` makes a new one)`;
}

interface CreateOptions {
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
  grantType?: string[];
  logoUrl?: string;
  debugMode?: boolean;
  dryRun?: boolean;
  format: OutputFormat;
}

function createInput(options: CreateOptions): ApplicationInput {
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
    grantTypes: options.grantType as GrantType[] | undefined,
    logoUrl: options.logoUrl,
    debugMode: options.debugMode === true,
  };
}

interface UpdateOptions {
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
      throw new CliError(`--${names.remove}: ${JSON.stringify(item)} is not a ${names.noun} of ${clientId}`);
    list = list.filter((existing) => existing !== item);
  }
  return list;
}

function updatePatch(current: Application, options: UpdateOptions): ApplicationPatch {
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
    accessTokenFormat: options.accessTokenFormat as AccessTokenFormatSetting | undefined,
    backchannelLogoutUri: options.clearBackchannelLogoutUri ? null : options.backchannelLogoutUri,
  };
  if (Object.values(patch).every((value) => value === undefined))
    throw new CliError('nothing to update: give at least one option (see `aa-oidc app update --help`)');
  return patch;
}

const dryRunOption = () => new Option('--dry-run', 'validate and show what would change; write nothing');

const CREATE_HELP = `
Grant types: without --grant-type a new app gets authorization_code and refresh_token. Each
--grant-type gives the complete list (authorization_code, refresh_token, client_credentials);
client_credentials is for confidential clients only.

Redirect URIs are matched as exact strings: absolute, no fragment, https (http only for
127.0.0.1, [::1] and localhost, or in development mode); public clients may also use a
reverse-domain private-use scheme such as com.example.app:/callback.

The client secret of a confidential app is printed once, here; only its SHA-256 digest is kept.
`;

const UPDATE_HELP = `
List options: --redirect-uri, --post-logout-redirect-uri, --state and --group (each repeatable)
REPLACE the whole list; --add-… and --remove-… edit the current list instead (applied in the
order replace, add, remove; removing an entry that is not there is an error); --clear-… empties
it. --grant-type (repeatable) replaces the grant types. Options not given leave the field as it
is. The client type and client_id cannot be changed. The whole result is validated as at create.
`;

export function registerApp(program: Command, io: CliIo): void {
  const app = program
    .command('app')
    .description(
      'applications (OIDC clients): create, list, show, update, rotate-secret, deactivate, activate',
    );

  app
    .command('create')
    .description('register an application; a confidential app gets a client secret, printed once')
    .requiredOption('--name <name>', 'display name (1–100 characters)')
    .option(
      '--client-id <id>',
      'an explicit client_id (3–100 of A–Z a–z 0–9 . _ ~ -, starting with a letter or digit); default: 32 random letters and digits',
    )
    .option('--redirect-uri <uri>', 'an exact redirect URI (repeatable)', collect)
    .option('--post-logout-redirect-uri <uri>', 'an exact post-logout redirect URI (repeatable)', collect)
    .option('--public', 'a public client (no secret; PKCE always required)')
    .option('--state <name>', 'whitelist a state by name (repeatable)', collect)
    .option('--group <name>', 'whitelist a group by name (repeatable)', collect)
    .option('--skip-authorization', 'do not ask users for consent')
    .option('--no-pkce-required', 'allow code flows without PKCE (confidential clients only)')
    .option('--access-token-format <format>', 'inherit | opaque | jwt (default inherit: the global setting)')
    .option('--backchannel-logout-uri <uri>', 'back-channel logout endpoint of the app')
    .option('--backchannel-logout-on-revoke-only', 'send back-channel logout only for `tokens revoke-user`')
    .option('--grant-type <type>', 'a grant type (repeatable; replaces the default list)', collect)
    .option('--logo-url <url>', 'http(s) URL of the logo shown on the consent page')
    .option('--debug-mode', 'verbose (still redacted) logging for this app')
    .addOption(dryRunOption())
    .addOption(formatOption())
    .addHelpText('after', CREATE_HELP)
    .action(async (options: CreateOptions) => {
      const { application, clientSecret } = await withApplications(io, (service) =>
        service.create(createInput(options), cliActor(io), { dryRun: options.dryRun === true }),
      );
      io.stdout.write(renderCreated(application, clientSecret, options.format, options.dryRun === true));
    });

  app
    .command('list')
    .description('list applications (never secrets)')
    .addOption(new Option('--active', 'only active applications').conflicts('inactive'))
    .addOption(new Option('--inactive', 'only deactivated applications'))
    .option('--search <text>', 'only names or client_ids containing this text (case-insensitive)')
    .addOption(formatOption())
    .action(
      async (options: { active?: boolean; inactive?: boolean; search?: string; format: OutputFormat }) => {
        const active = options.active ? true : options.inactive ? false : undefined;
        const rows = await withApplications(io, (service) =>
          service.list({ active, search: options.search }),
        );
        const columns = options.format === 'csv' ? ALL_COLUMNS : LIST_COLUMNS;
        io.stdout.write(renderRows(rows, columns, options.format, applicationJson));
      },
    );

  app
    .command('show')
    .description('show one application (never its secret)')
    .argument('<client_id>', 'the application')
    .addOption(formatOption())
    .action(async (clientId: string, options: { format: OutputFormat }) => {
      const application = await withApplications(io, async (service) => {
        const found = await service.findByClientId(clientId);
        if (found === undefined) throw ApplicationError.notFound(clientId);
        return found;
      });
      io.stdout.write(renderOne(application, options.format));
    });

  app
    .command('update')
    .description('change an application; fields not given stay as they are')
    .argument('<client_id>', 'the application')
    .option('--name <name>', 'display name')
    .option('--logo-url <url>', 'http(s) logo URL')
    .option('--clear-logo-url', 'remove the logo URL')
    .option('--redirect-uri <uri>', 'replace the redirect URIs with these (repeatable)', collect)
    .option('--add-redirect-uri <uri>', 'add a redirect URI (repeatable)', collect)
    .option('--remove-redirect-uri <uri>', 'remove a redirect URI (repeatable)', collect)
    .option('--post-logout-redirect-uri <uri>', 'replace the post-logout redirect URIs (repeatable)', collect)
    .option('--add-post-logout-redirect-uri <uri>', 'add a post-logout redirect URI (repeatable)', collect)
    .option(
      '--remove-post-logout-redirect-uri <uri>',
      'remove a post-logout redirect URI (repeatable)',
      collect,
    )
    .option('--clear-post-logout-redirect-uris', 'remove every post-logout redirect URI')
    .option('--state <name>', 'replace the state whitelist (repeatable)', collect)
    .option('--add-state <name>', 'whitelist one more state (repeatable)', collect)
    .option('--remove-state <name>', 'drop a state from the whitelist (repeatable)', collect)
    .option('--clear-states', 'empty the state whitelist')
    .option('--group <name>', 'replace the group whitelist (repeatable)', collect)
    .option('--add-group <name>', 'whitelist one more group (repeatable)', collect)
    .option('--remove-group <name>', 'drop a group from the whitelist (repeatable)', collect)
    .option('--clear-groups', 'empty the group whitelist')
    .option('--grant-type <type>', 'replace the grant types (repeatable)', collect)
    .option('--skip-authorization', 'do not ask users for consent')
    .option('--no-skip-authorization', 'ask users for consent')
    .option('--pkce-required', 'require PKCE')
    .option('--no-pkce-required', 'allow code flows without PKCE (confidential clients only)')
    .option('--debug-mode', 'verbose (still redacted) logging for this app')
    .option('--no-debug-mode', 'normal logging for this app')
    .option('--backchannel-logout-on-revoke-only', 'back-channel logout only for `tokens revoke-user`')
    .option('--no-backchannel-logout-on-revoke-only', 'back-channel logout for every trigger')
    .option('--access-token-format <format>', 'inherit | opaque | jwt')
    .option('--backchannel-logout-uri <uri>', 'back-channel logout endpoint of the app')
    .option('--clear-backchannel-logout-uri', 'remove the back-channel logout endpoint')
    .addOption(dryRunOption())
    .addHelpText('after', UPDATE_HELP)
    .action(async (clientId: string, options: UpdateOptions) => {
      const result = await withApplications(io, async (service) => {
        const current = await service.findByClientId(clientId);
        if (current === undefined) throw ApplicationError.notFound(clientId);
        return service.update(clientId, updatePatch(current, options), cliActor(io), {
          dryRun: options.dryRun === true,
        });
      });
      const fields = result.changedFields.join(', ');
      io.stdout.write(
        result.changedFields.length === 0
          ? `application ${clientId} unchanged (the values given are the current ones)\n`
          : options.dryRun
            ? `dry run, nothing written: would change ${fields} of application ${clientId}\n`
            : `updated application ${clientId}: ${fields}\n`,
      );
    });

  app
    .command('rotate-secret')
    .description('replace the client secret of a confidential app; the old one stops working at once')
    .argument('<client_id>', 'the application')
    .addOption(dryRunOption())
    .addOption(formatOption())
    .action(async (clientId: string, options: { dryRun?: boolean; format: OutputFormat }) => {
      const { clientSecret } = await withApplications(io, (service) =>
        service.rotateSecret(clientId, cliActor(io), { dryRun: options.dryRun === true }),
      );
      io.stdout.write(renderRotated(clientId, clientSecret, options.format));
    });

  for (const [command, active] of [
    ['deactivate', false],
    ['activate', true],
  ] as const) {
    app
      .command(command)
      .description(
        active
          ? 'allow a deactivated application again'
          : 'switch an application off: no authorize, no token, no introspection, no logout delivery',
      )
      .argument('<client_id>', 'the application')
      .addOption(dryRunOption())
      .action(async (clientId: string, options: { dryRun?: boolean }) => {
        const verb = active ? 'activated' : 'deactivated';
        const message = await withApplications(io, async (service) => {
          const before = await service.findByClientId(clientId);
          if (before === undefined) throw ApplicationError.notFound(clientId);
          if (before.active === active) return `application ${clientId} is already ${verb}; nothing to do\n`;
          const dryRun = options.dryRun === true;
          await (active ? service.activate : service.deactivate)(clientId, cliActor(io), { dryRun });
          return dryRun
            ? `dry run, nothing written: application ${clientId} would be ${verb}\n`
            : `application ${clientId} ${verb}\n`;
        });
        io.stdout.write(message);
      });
  }
}

function renderOne(application: Application, format: OutputFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(applicationJson(application), null, 2)}\n`;
    case 'csv':
      return renderRows([application], ALL_COLUMNS, 'csv', applicationJson);
    case 'table':
      return describeApplication(application);
    default:
      return assertNever(format);
  }
}

function renderCreated(
  application: Application,
  clientSecret: string | null,
  format: OutputFormat,
  dryRun: boolean,
): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(
        {
          client_id: application.clientId,
          client_secret: clientSecret,
          ...(dryRun ? { dry_run: true } : {}),
          ...applicationJson(application),
        },
        null,
        2,
      )}\n`;
    case 'csv':
      return renderRows(
        [application],
        [{ header: 'client_secret', value: () => clientSecret }, ...ALL_COLUMNS],
        'csv',
        applicationJson,
      );
    case 'table': {
      const lines = [
        dryRun
          ? `dry run, nothing written: application ${JSON.stringify(application.name)} is valid and would be created`
          : `created application ${JSON.stringify(application.name)}`,
        `client_id:     ${application.clientId}`,
      ];
      if (application.clientType === 'public')
        lines.push('client_type:   public (no client secret; PKCE is always required)');
      else if (clientSecret !== null)
        lines.push(`client_secret: ${clientSecret}`, secretNotice(application.clientId));
      else lines.push('client_secret: (generated on creation, not in a dry run)');
      return `${lines.join('\n')}\n`;
    }
    default:
      return assertNever(format);
  }
}

function renderRotated(clientId: string, clientSecret: string | null, format: OutputFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify({ client_id: clientId, client_secret: clientSecret, ...(clientSecret === null ? { dry_run: true } : {}) }, null, 2)}\n`;
    case 'csv':
      return renderRows(
        [clientId],
        [
          { header: 'client_id', value: (id) => id },
          { header: 'client_secret', value: () => clientSecret },
        ],
        'csv',
        (id) => id,
      );
    case 'table':
      return clientSecret === null
        ? `dry run, nothing written: the secret of ${clientId} would be replaced; the current one keeps working\n`
        : `new client_secret for ${clientId}: ${clientSecret}\n${secretNotice(clientId)}\n  the previous secret no longer works\n`;
    default:
      return assertNever(format);
  }
}
