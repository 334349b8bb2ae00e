import type { Command } from 'commander';
import type { GroupSummary } from '../../directory/builtin/types.ts';
import { type CliIo, isoTime, READS_ONLY } from '../context.ts';
import { type Column, formatOption, lineWriter, type OutputFormat, renderRows } from '../output.ts';
import { registerGrantAccess } from './grant-access.ts';
import { registerRenameAndDelete } from './rename-delete.ts';
import { changeOptions, withDirectory } from './user.ts';

const GROUP_COLUMNS: readonly Column<GroupSummary>[] = [
  { header: 'name', value: (group) => group.name },
  { header: 'oidc access', value: (group) => group.oidc_access === 1 },
  { header: 'users', value: (group) => group.userCount },
];

function groupJson(group: GroupSummary): Record<string, unknown> {
  return {
    name: group.name,
    oidc_access: group.oidc_access === 1,
    users: group.userCount,
    created_at: isoTime(group.created_at),
  };
}

export function registerGroup(program: Command, io: CliIo): void {
  const group = program.command('group').description('groups of the built-in directory');
  const say = lineWriter(io.stdout);

  group
    .command('create')
    .description('create a group')
    .argument('<name>', "the new group's name")
    .option('--oidc-access', 'grant the oidc_access permission to every member')
    .action(async (name: string, options: { oidcAccess?: boolean }) => {
      const created = await withDirectory(io, (directory) =>
        directory.createGroup(name, options.oidcAccess === true, changeOptions(io)),
      );
      say(
        `created group ${created.name} (oidc_access ${created.oidc_access === 1 ? 'granted' : 'not granted'})`,
      );
    });

  group
    .command('list')
    .description('list groups, by name')
    .addOption(formatOption())
    .action(async (options: { format: OutputFormat }) => {
      const groups = await withDirectory(io, (directory) => directory.listGroups(), READS_ONLY);
      io.stdout.write(renderRows(groups, GROUP_COLUMNS, options.format, groupJson));
    });

  registerGrantAccess(group, io, 'group', async (directory, name, oidcAccess, dryRun, consequences) => {
    const result = await directory.grantGroupAccess(
      name,
      oidcAccess,
      changeOptions(io, dryRun, consequences),
    );
    return { changed: result.changed, name: result.group.name };
  });

  registerRenameAndDelete(group, io, 'group');
}
