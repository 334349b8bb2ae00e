import type { Command } from 'commander';
import type { StateSummary } from '../../directory/types.ts';
import { CliError, type CliIo, isoTime } from '../context.ts';
import { type Column, formatOption, type OutputFormat, renderRows } from '../output.ts';
import { changeOptions, withDirectory } from './user.ts';

const STATE_COLUMNS: readonly Column<StateSummary>[] = [
  { header: 'name', value: (state) => state.name },
  { header: 'priority', value: (state) => state.priority },
  { header: 'oidc access', value: (state) => state.oidc_access === 1 },
  { header: 'users', value: (state) => state.userCount },
];

function stateJson(state: StateSummary): Record<string, unknown> {
  return {
    name: state.name,
    priority: state.priority,
    oidc_access: state.oidc_access === 1,
    users: state.userCount,
    created_at: isoTime(state.created_at),
  };
}

/** `--priority` as a whole number, or a one-line reason. */
function parsePriority(text: string | undefined): number {
  if (text === undefined)
    throw new CliError('--priority N is required (a whole number; states have unique priorities)');
  if (!/^-?\d{1,10}$/.test(text))
    throw new CliError(`--priority must be a whole number (got ${JSON.stringify(text)})`);
  return Number(text);
}

export function registerState(program: Command, io: CliIo): void {
  const state = program
    .command('state')
    .description('states of the built-in directory (Member, Blue, Guest, …)');
  const say = (line: string) => io.stdout.write(`${line}\n`);

  state
    .command('create')
    .description('create a state')
    .argument('<name>')
    .option('--priority <n>', 'unique priority (higher ranks first)')
    .option('--oidc-access', 'grant the oidc_access permission to everyone in this state')
    .action(async (name: string, options: { priority?: string; oidcAccess?: boolean }) => {
      const priority = parsePriority(options.priority);
      const created = await withDirectory((directory) =>
        directory.createState(name, priority, options.oidcAccess === true, changeOptions()),
      );
      say(
        `created state ${created.name} (priority ${created.priority}; oidc_access ${created.oidc_access === 1 ? 'granted' : 'not granted'})`,
      );
    });

  state
    .command('list')
    .description('list states, highest priority first')
    .addOption(formatOption())
    .action(async (options: { format: OutputFormat }) => {
      const states = await withDirectory((directory) => directory.listStates());
      io.stdout.write(renderRows(states, STATE_COLUMNS, options.format, stateJson));
    });

  state
    .command('grant-access')
    .description('grant (or with --revoke, take away) the oidc_access permission of a state')
    .argument('<name>')
    .option('--revoke', 'take the permission away')
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (name: string, options: { revoke?: boolean; dryRun?: boolean }) => {
      const grant = options.revoke !== true;
      const dryRun = options.dryRun === true;
      const result = await withDirectory((directory) =>
        directory.grantStateAccess(name, grant, changeOptions(dryRun)),
      );
      const verb = grant ? 'granted to' : 'revoked from';
      const state = result.state.name;
      if (!result.changed)
        say(`oidc_access already ${grant ? 'granted to' : 'absent from'} state ${state}; nothing changed`);
      else if (dryRun) say(`dry run: oidc_access would be ${verb} state ${state}; nothing changed`);
      else say(`oidc_access ${verb} state ${state}`);
    });
}
