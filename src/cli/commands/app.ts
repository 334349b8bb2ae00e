import { type Command, Option } from 'commander';
import type { ApplicationService } from '../../applications/types.ts';
import type { Consequence } from '../../db/unit-of-work.ts';
import { type CliIo, cliActor, READS_ONLY, withServices } from '../context.ts';
import { filterOption } from '../option-values.ts';
import { formatOption, type OutputFormat, renderRows, textLines } from '../output.ts';
import { collect, type CreateOptions, createInput, type UpdateOptions, updatePatch } from './app-options.ts';
import {
  ALL_COLUMNS,
  applicationJson,
  LIST_COLUMNS,
  renderCreated,
  renderOne,
  renderRotated,
} from './app-output.ts';

function withApplications<T>(
  io: CliIo,
  work: (service: ApplicationService) => Promise<T>,
  options?: typeof READS_ONLY,
): Promise<T> {
  return withServices(io, (services) => work(services.applications), options);
}

const dryRunOption = () => new Option('--dry-run', 'validate and show what would change; write nothing');

const CREATE_HELP = `
Grant types: without --grant-type a new app gets authorization_code and
refresh_token. Each --grant-type gives the complete list (authorization_code,
refresh_token, client_credentials); client_credentials is for confidential
clients only.

Redirect URIs are matched as exact strings: absolute, no fragment, https (http
only for 127.0.0.1, [::1] and localhost, or in development mode); public clients
may also use a reverse-domain private-use scheme such as
com.example.app:/callback. An app with such a scheme is native: there an
http://127.0.0.1/... or http://[::1]/... URI matches at any port (RFC 8252
7.3), path and query still exactly; localhost URIs, and every URI of other
apps, match with their port. Post-logout redirect URIs likewise.

ID token: without --id-token-claims it carries only the protocol claims (sub,
auth_time, sid, …) and what the claims parameter asks for; the scopes' claims
come from userinfo. With it, the granted scopes' claims (email, email_verified,
groups, preferred_username, name, …) are in the id_token too, for relying
parties that read them only there (oauth2-proxy).

The client secret of a confidential app is printed once, here; only its SHA-256
digest is kept.
`;

const UPDATE_HELP = `
List options: --redirect-uri, --post-logout-redirect-uri, --state and --group
(each repeatable) REPLACE the whole list; --add-… and --remove-… edit the
current list instead (applied in the order replace, add, remove; removing an
entry that is not there is an error); --clear-… empties it. --grant-type
(repeatable) replaces the grant types. Options not given leave the field as it
is. The client type and client_id cannot be changed. The whole result is
validated as at create. A switch and its --no-… form together (--debug-mode
--no-debug-mode) are refused, as are --logo-url with --clear-logo-url and
--backchannel-logout-uri with --clear-backchannel-logout-uri.
`;

/**
 * What new whitelists (or an activation) take from the users who signed in at the application:
 * nothing printed when they take nothing; a dry run says what would happen.
 */
function accessLossLines(consequences: readonly Consequence[], dryRun: boolean): string[] {
  const users = new Set<number>();
  let logouts = 0;
  let revoked = 0;
  for (const consequence of consequences) {
    if (consequence.kind === 'access_lost') users.add(consequence.userId);
    else if (consequence.kind === 'logout_queued') logouts += 1;
    else if (consequence.kind === 'tokens_revoked') revoked += consequence.count;
  }
  if (users.size === 0) return [];
  return [
    `  users who signed in here and ${dryRun ? 'would lose' : 'lost'} access: ${users.size}`,
    `  back-channel logouts ${dryRun ? 'that would be ' : ''}queued: ${logouts}`,
    `  codes and tokens ${dryRun ? 'that would be ' : ''}revoked: ${revoked}`,
  ];
}

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
      'an explicit client_id (3–100 of A–Z a–z 0–9 . _ ~ -, starting with a letter or digit, not an existing one in any case); default: 32 random letters and digits',
    )
    .option('--redirect-uri <uri>', 'a redirect URI, matched exactly (repeatable; see below)', collect)
    .option(
      '--post-logout-redirect-uri <uri>',
      'a post-logout redirect URI, matched as redirect URIs are (repeatable; see below)',
      collect,
    )
    .option('--public', 'a public client (no secret; PKCE always required)')
    .option('--state <name>', 'whitelist a state by name (repeatable)', collect)
    .option('--group <name>', 'whitelist a group by name (repeatable)', collect)
    .option('--skip-authorization', 'do not ask users for consent')
    .option('--no-pkce-required', 'allow code flows without PKCE (confidential clients only)')
    .option('--access-token-format <format>', 'inherit | opaque | jwt (default inherit: the global setting)')
    .option('--backchannel-logout-uri <uri>', 'back-channel logout endpoint of the app')
    .option('--backchannel-logout-on-revoke-only', 'send back-channel logout only for `tokens revoke-user`')
    .option(
      '--id-token-claims',
      "also put the granted scopes' claims (email, groups, preferred_username, …) into the id_token",
    )
    .option('--grant-type <type>', 'a grant type (repeatable; replaces the default list)', collect)
    .option('--logo-url <url>', 'https URL of the logo shown on the consent page')
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
    .addOption(
      filterOption(
        '--search <text>',
        'only names or client_ids containing this text (case-insensitive)',
        'some text',
      ),
    )
    .addOption(formatOption())
    .action(
      async (options: { active?: boolean; inactive?: boolean; search?: string; format: OutputFormat }) => {
        const active = options.active ? true : options.inactive ? false : undefined;
        const rows = await withApplications(
          io,
          (service) => service.list({ active, search: options.search }),
          READS_ONLY,
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
      const application = await withApplications(
        io,
        async (service) => {
          const found = await service.findByClientId(clientId);
          if (found === undefined) throw await service.unknownClientId(clientId);
          return found;
        },
        READS_ONLY,
      );
      io.stdout.write(renderOne(application, options.format));
    });

  app
    .command('update')
    .description('change an application; fields not given stay as they are')
    .argument('<client_id>', 'the application')
    .option('--name <name>', 'display name')
    .option('--logo-url <url>', 'https logo URL')
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
    .option('--id-token-claims', "also put the granted scopes' claims into the id_token")
    .option('--no-id-token-claims', 'a minimal id_token (the claims come from userinfo)')
    .option('--access-token-format <format>', 'inherit | opaque | jwt')
    .option('--backchannel-logout-uri <uri>', 'back-channel logout endpoint of the app')
    .option('--clear-backchannel-logout-uri', 'remove the back-channel logout endpoint')
    .addOption(dryRunOption())
    .addHelpText('after', UPDATE_HELP)
    .action(async (clientId: string, options: UpdateOptions) => {
      const consequences: Consequence[] = [];
      const result = await withApplications(io, async (service) => {
        const current = await service.findByClientId(clientId);
        if (current === undefined) throw await service.unknownClientId(clientId);
        return service.update(clientId, updatePatch(current, options), cliActor(io), {
          dryRun: options.dryRun === true,
          consequences,
        });
      });
      const fields = result.changedFields.join(', ');
      io.stdout.write(
        textLines([
          result.changedFields.length === 0
            ? `application ${clientId} unchanged (the values given are the current ones)`
            : options.dryRun
              ? `dry run, nothing written: would change ${fields} of application ${clientId}`
              : `updated application ${clientId}: ${fields}`,
          ...accessLossLines(consequences, options.dryRun === true),
        ]),
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
          ? 'allow a deactivated application again; whoever signed in there and is no longer admitted is logged out of it'
          : 'switch an application off: no authorize, no token, no introspection, no logout delivery',
      )
      .argument('<client_id>', 'the application')
      .addOption(dryRunOption())
      .action(async (clientId: string, options: { dryRun?: boolean }) => {
        const verb = active ? 'activated' : 'deactivated';
        const dryRun = options.dryRun === true;
        const consequences: Consequence[] = [];
        const message = await withApplications(io, async (service) => {
          const before = await service.findByClientId(clientId);
          if (before === undefined) throw await service.unknownClientId(clientId);
          if (before.active === active) return `application ${clientId} is already ${verb}; nothing to do`;
          if (active) await service.activate(clientId, cliActor(io), { dryRun, consequences });
          else await service.deactivate(clientId, cliActor(io), { dryRun });
          return dryRun
            ? `dry run, nothing written: application ${clientId} would be ${verb}`
            : `application ${clientId} ${verb}`;
        });
        io.stdout.write(textLines([message, ...accessLossLines(consequences, dryRun)]));
      });
  }
}
