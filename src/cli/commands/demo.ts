import type { Command } from 'commander';
import { ApplicationError, quote } from '../../applications/errors.ts';
import { DemoRefusedError, type DemoSeedResult, seedDemo } from '../../demo/seed.ts';
import { DirectoryError } from '../../directory/errors.ts';
import { createServices } from '../../services.ts';
import { assertNever } from '../../util/assert-never.ts';
import { CliError, type CliIo, cliActor, cliConfig } from '../context.ts';
import { jsonDocument, textLines, textOrJsonOption } from '../output.ts';

type DemoFormat = 'text' | 'json';

interface DemoOptions {
  issuerUrl?: string;
  resetPasswords?: boolean;
  format: DemoFormat;
}

/**
 * The issuer URL `--issuer-url` gives; a bad one is refused, quoted as the applications' messages quote
 * a URI (`quote`): its user information masked, so that a password given in it is not repeated.
 */
function parseIssuerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(`--issuer-url: ${quote(value)} is not a URL; expected e.g. http://localhost:8000/o`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError(`--issuer-url: ${quote(value)} must be an http or https URL`);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '')
    throw new CliError(`--issuer-url: ${quote(value)} must not carry a query, fragment or credentials`);
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

const HELP = `
Seeds, in development mode only (production refuses):
  states Member (priority 100, oidc_access), Blue (50, oidc_access),
    Guest (10, no access);
  groups Directors and Fleet Commanders;
  users demo-member, demo-director, demo-blue, demo-guest with fictional EVE
    characters, each with a random password printed once (--reset-passwords
    prints new ones later);
  the application "aa-oidc-demo" (confidential, whitelists Member and Blue),
    whose secret is kept in DATA_DIR/demo-client.json (mode 0600) for the demo
    relying party.
Running it again creates nothing twice. Then open the printed URL with
\`aa-oidc serve\` running.
`;

export function registerDemo(program: Command, io: CliIo): void {
  program
    .command('demo')
    .description(
      'seed demo states, groups, users and a demo application; print a login URL (development only)',
    )
    .option('--issuer-url <url>', 'the issuer the server runs with (default: the configured issuer)')
    .option('--reset-passwords', 'give demo users that already exist new random passwords')
    .addOption(textOrJsonOption())
    .addHelpText('after', HELP)
    .action(async (options: DemoOptions) => {
      const config = cliConfig(io, { quiet: true });
      if (config.mode !== 'development')
        throw new CliError(
          'demo refuses production mode: it creates users with printed passwords and a demo application (use AA_OIDC_MODE=development)',
        );
      const issuer = options.issuerUrl === undefined ? undefined : parseIssuerUrl(options.issuerUrl);
      const services = await createServices(config, {
        // Development mode: the same database `serve` uses, migrated as `serve` would.
        migrate: true,
        forWriting: true,
        logger: { destination: io.logDestination('stderr') },
      });
      let result: DemoSeedResult;
      try {
        result = await seedDemo(services, {
          issuer,
          resetPasswords: options.resetPasswords === true,
          actor: cliActor(io),
        });
      } catch (error) {
        if (
          error instanceof DemoRefusedError ||
          error instanceof DirectoryError ||
          error instanceof ApplicationError
        )
          throw new CliError(`demo: ${error.message}`);
        throw error;
      } finally {
        await services.close();
      }
      io.stdout.write(render(result, options.format));
    });
}

function render(result: DemoSeedResult, format: DemoFormat): string {
  switch (format) {
    case 'json':
      return jsonDocument({
        login_url: result.loginUrl,
        issuer: result.issuer,
        states: result.states.map((state) => ({
          name: state.name,
          priority: state.priority,
          oidc_access: state.oidcAccess,
          status: state.status,
        })),
        groups: result.groups,
        users: result.users.map((user) => ({
          username: user.username,
          status: user.status,
          password: user.password,
          state: user.state,
          groups: user.groups,
          character_name: user.characterName,
          purpose: user.purpose,
        })),
        application: {
          client_id: result.application.clientId,
          name: result.application.name,
          redirect_uri: result.application.redirectUri,
          active: result.application.active,
          changes: result.application.changes,
          secret_file: result.application.secretFile,
        },
      });
    case 'text':
      return renderText(result);
    default:
      return assertNever(format);
  }
}

function renderText(result: DemoSeedResult): string {
  const lines: string[] = [`aa-oidc demo for issuer ${result.issuer}`, ''];
  lines.push('States:');
  for (const state of result.states)
    lines.push(
      `  ${state.name.padEnd(8)} priority ${String(state.priority).padEnd(4)} ${state.oidcAccess ? 'oidc_access   ' : 'no access     '}${state.status}`,
    );
  lines.push(`Groups: ${result.groups.map((group) => `${group.name} (${group.status})`).join(', ')}`, '');
  lines.push('Users (passwords are shown only now):');
  const width = Math.max(...result.users.map((user) => user.username.length));
  for (const user of result.users) {
    const password =
      user.password === null
        ? 'password unchanged (--reset-passwords sets a new one)'
        : `password ${user.password}`;
    lines.push(`  ${user.username.padEnd(width)}  ${password}`);
    lines.push(
      `  ${''.padEnd(width)}  ${user.characterName}; ${user.purpose}${user.status === 'created' ? '' : ` [${user.status.replace('_', ' ')}]`}`,
    );
  }
  const app = result.application;
  lines.push('', `Application ${app.clientId} (${app.name}): ${app.changes.join(', ').replaceAll('_', ' ')}`);
  lines.push(`  redirect URI ${app.redirectUri}`, `  client secret kept in ${app.secretFile} (mode 0600)`);
  if (!app.active)
    lines.push(`  it is DEACTIVATED: \`aa-oidc app activate ${app.clientId}\` switches it on again`);
  lines.push(
    '',
    'With the server running (`npm start` or `aa-oidc serve`), open in a browser:',
    `  ${result.loginUrl}`,
    'and sign in as demo-member: login, consent, then the demo relying party shows the claims.',
  );
  return textLines(lines);
}
