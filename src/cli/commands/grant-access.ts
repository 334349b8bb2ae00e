import type { Command } from 'commander';
import type { DirectoryAdmin } from '../../directory/builtin/types.ts';
import type { CliIo } from '../context.ts';
import type { Consequence } from '../../db/unit-of-work.ts';
import { lineWriter, storedNameHelp } from '../output.ts';
import { consequenceLines, withDirectory } from './user.ts';

/**
 * `state grant-access NAME [--revoke] [--dry-run]` and its twin under `group`: the oidc_access
 * permission of a state or group, one command shape for both.
 */
export function registerGrantAccess(
  parent: Command,
  io: CliIo,
  entity: 'state' | 'group',
  grant: (
    directory: DirectoryAdmin,
    name: string,
    oidcAccess: boolean,
    dryRun: boolean,
    consequences: Consequence[],
  ) => Promise<{ changed: boolean; name: string }>,
): void {
  const say = lineWriter(io.stdout);
  parent
    .command('grant-access')
    .description(`grant (or with --revoke, take away) the oidc_access permission of a ${entity}`)
    .argument('<name>', storedNameHelp(entity))
    .option('--revoke', 'take the permission away')
    .option('--dry-run', 'show what would change, change nothing')
    .action(async (name: string, options: { revoke?: boolean; dryRun?: boolean }) => {
      const oidcAccess = options.revoke !== true;
      const dryRun = options.dryRun === true;
      const consequences: Consequence[] = [];
      const result = await withDirectory(io, (directory) =>
        grant(directory, name, oidcAccess, dryRun, consequences),
      );
      const verb = oidcAccess ? 'granted to' : 'revoked from';
      const target = `${entity} ${result.name}`;
      if (!result.changed) {
        say(`oidc_access already ${oidcAccess ? 'granted to' : 'absent from'} ${target}; nothing changed`);
      } else if (dryRun) {
        say(`dry run: oidc_access would be ${verb} ${target}; nothing changed`);
        consequenceLines(consequences).forEach(say);
      } else say(`oidc_access ${verb} ${target}`);
    });
}
