import type { Command } from 'commander';
import type { DirectoryAdmin } from '../../directory/builtin/types.ts';
import type { CliIo } from '../context.ts';
import type { Consequence } from '../../db/unit-of-work.ts';
import { lineWriter, storedNameHelp } from '../output.ts';
import { changeOptions, consequenceLines, withDirectory } from './user.ts';

/**
 * `state rename OLD NEW`, `state delete NAME [--dry-run]` and their twins under `group`. A rename
 * follows into every application whitelist; a deletion is refused while an application whitelists
 * the state or group (or, for a state, while users are in it).
 */
export function registerRenameAndDelete(parent: Command, io: CliIo, entity: 'state' | 'group'): void {
  const say = lineWriter(io.stdout);
  const rename = (directory: DirectoryAdmin, name: string, newName: string) =>
    entity === 'state'
      ? directory.renameState(name, newName, changeOptions(io)).then((result) => ({
          changed: result.changed,
          name: result.state.name,
        }))
      : directory.renameGroup(name, newName, changeOptions(io)).then((result) => ({
          changed: result.changed,
          name: result.group.name,
        }));

  parent
    .command('rename')
    .description(`rename a ${entity}; application whitelists follow`)
    .argument('<name>', storedNameHelp(entity))
    .argument('<new-name>', `the ${entity}'s new name`)
    .action(async (name: string, newName: string) => {
      const result = await withDirectory(io, (directory) => rename(directory, name, newName));
      say(
        result.changed
          ? `renamed ${entity} ${name} to ${result.name}`
          : `${entity} ${result.name} already has this name; nothing changed`,
      );
    });

  parent
    .command('delete')
    .description(
      entity === 'state'
        ? 'delete a state nobody is in and no application whitelists'
        : 'delete a group no application whitelists; its members lose it (back-channel logout tells the apps they lose)',
    )
    .argument('<name>', storedNameHelp(entity))
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (name: string, options: { dryRun?: boolean }) => {
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const deleted = await withDirectory(io, (directory) =>
        entity === 'state'
          ? directory.deleteState(name, changeOptions(io, dryRun, consequences))
          : directory.deleteGroup(name, changeOptions(io, dryRun, consequences)),
      );
      say(
        dryRun
          ? `dry run: would delete ${entity} ${deleted.name}; nothing changed`
          : `deleted ${entity} ${deleted.name}`,
      );
      if (dryRun) consequenceLines(consequences).forEach(say);
    });
}
