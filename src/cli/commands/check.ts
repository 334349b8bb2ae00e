import { Option, type Command } from 'commander';
import { allianceAuthDataChecks } from '../../alliance-auth/data-checks.ts';
import { directoryBindingChecks, formatFindings, hasError } from '../../checks/checks.ts';
import { systemChecksOverWhatCanBeRead } from '../../checks/run.ts';
import { describeDatabase } from '../../db/errors.ts';
import { usersWithTextToJudge } from '../../directory/builtin/reads.ts';
import { pgBossChecks, storageChecks } from '../storage-checks.ts';
import { CliError, type CliIo, withServices } from '../context.ts';
import { jsonDocument, textBlock } from '../output.ts';

export function registerCheck(program: Command, io: CliIo): void {
  program
    .command('check')
    .description('run the system checks; exits non-zero when any finding is an error')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (options: { format: 'text' | 'json' }) => {
      // The system checks that serve runs too, each over what could be read (E009 for a part that
      // could not be), with the built-in directory's users' texts (W015), then a pg-boss schema serve
      // and worker refuse (E008), and where serve writes (W012, judged for this user and the
      // database role it connects as), and Alliance Auth's rows that AA's own code would not have
      // left (W016 to W019; W020 for a check whose query failed).
      // An Alliance Auth database that could not be read at start, or whose schema check refused it
      // (a table or column the login cannot SELECT; serve and worker stop there) is E009 of the
      // directory, told once, not asked again by each check that reads it. E010: the
      // configured directory is not the one the database's user ids belong to.
      const findings = await withServices(
        io,
        async (services) => {
          const aa = services.allianceAuth;
          const ownDatabase = describeDatabase(services.config.database);
          const unreadable = aa?.unreadableAtStart;
          return [
            ...(await systemChecksOverWhatCanBeRead(
              services.config,
              services.applications,
              unreadable
                ? {
                    listStates: () => Promise.reject(unreadable),
                    listGroups: () => Promise.reject(unreadable),
                  }
                : services.directory,
              services.keys,
              {
                ownDatabase: { described: ownDatabase, address: ownDatabase },
                directory: aa
                  ? {
                      described: `Alliance Auth's database ${aa.connection.displayUrl}`,
                      address: aa.connection.displayUrl,
                      ...(unreadable && { alsoSkipped: "W016 to W019 of Alliance Auth's rows" }),
                    }
                  : { described: ownDatabase, address: ownDatabase },
              },
              services.config.directory.source === 'builtin'
                ? () => usersWithTextToJudge(services.database.db)
                : undefined,
            )),
            ...directoryBindingChecks(services.directoryBinding),
            ...(await pgBossChecks(services.database)),
            ...(await storageChecks(services.config, services.database)),
            ...(aa && !unreadable ? await allianceAuthDataChecks(aa.connection) : []),
          ];
        },
        { allianceAuthUnreadableAtStart: 'report', otherDirectory: 'allow' },
      );
      io.stdout.write(
        options.format === 'json' ? jsonDocument(findings) : textBlock(formatFindings(findings)),
      );
      if (hasError(findings)) {
        const errors = findings.filter((finding) => finding.level === 'error').map((finding) => finding.id);
        throw new CliError(`system check found ${errors.length} error(s): ${errors.join(', ')}`);
      }
    });
}
