import type { Command } from 'commander';
import type { StateSummary } from '../../directory/builtin/types.ts';
import { PRIORITY_MAX, PRIORITY_MIN } from '../../directory/builtin/validation.ts';
import { parseWholeNumber } from '../../util/whole-number.ts';
import { CliError, type CliIo, isoTime, READS_ONLY } from '../context.ts';
import {
  type Column,
  formatOption,
  lineWriter,
  type OutputFormat,
  quotedInput,
  renderRows,
  storedNameHelp,
} from '../output.ts';
import { registerGrantAccess } from './grant-access.ts';
import { registerRenameAndDelete } from './rename-delete.ts';
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
  const range = `a whole number from ${PRIORITY_MIN} to ${PRIORITY_MAX}`;
  if (text === undefined)
    throw new CliError(`--priority N is required (${range}; states have unique priorities)`);
  const priority = parseWholeNumber(text);
  if (priority === undefined || priority < PRIORITY_MIN || priority > PRIORITY_MAX)
    throw new CliError(`--priority must be ${range} (got ${quotedInput(text)})`);
  return priority;
}

export function registerState(program: Command, io: CliIo): void {
  const state = program
    .command('state')
    .description('states of the built-in directory (Member, Blue, Guest, …)');
  const say = lineWriter(io.stdout);

  state
    .command('create')
    .description('create a state')
    .argument('<name>', "the new state's name")
    .option('--priority <n>', 'unique priority (higher ranks first)')
    .option('--oidc-access', 'grant the oidc_access permission to everyone in this state')
    .action(async (name: string, options: { priority?: string; oidcAccess?: boolean }) => {
      const priority = parsePriority(options.priority);
      const created = await withDirectory(io, (directory) =>
        directory.createState(name, priority, options.oidcAccess === true, changeOptions(io)),
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
      const states = await withDirectory(io, (directory) => directory.listStates(), READS_ONLY);
      io.stdout.write(renderRows(states, STATE_COLUMNS, options.format, stateJson));
    });

  state
    .command('set-priority')
    .description('give a state another priority (unique; higher ranks first)')
    .argument('<name>', storedNameHelp('state'))
    .requiredOption('--priority <n>', 'the new priority')
    .action(async (name: string, options: { priority?: string }) => {
      const priority = parsePriority(options.priority);
      const result = await withDirectory(io, (directory) =>
        directory.setStatePriority(name, priority, changeOptions(io)),
      );
      say(
        result.changed
          ? `state ${result.state.name} now has priority ${result.state.priority}`
          : `state ${result.state.name} already has priority ${priority}; nothing changed`,
      );
    });

  registerGrantAccess(state, io, 'state', async (directory, name, oidcAccess, dryRun, consequences) => {
    const result = await directory.grantStateAccess(
      name,
      oidcAccess,
      changeOptions(io, dryRun, consequences),
    );
    return { changed: result.changed, name: result.state.name };
  });

  registerRenameAndDelete(state, io, 'state');
}
