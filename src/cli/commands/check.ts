import { Option, type Command } from 'commander';
import { allianceAuthDataChecks } from '../../alliance-auth/data-checks.ts';
import { formatFindings, hasError } from '../../checks/checks.ts';
import { systemChecksOverWhatCanBeRead } from '../../checks/run.ts';
import { describeDatabase } from '../../db/errors.ts';
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
      // could not be), then a pg-boss schema serve and worker refuse (E008), and where serve writes
      // (W012, judged for this user and the database role it connects as), and Alliance Auth's rows
      // that AA's own code would not have left (W016 to W019; W020 for a check whose query failed).
      const findings = await withServices(io, async (services) => [
        ...(await systemChecksOverWhatCanBeRead(
          services.config,
          services.applications,
          services.directory,
          services.keys,
          {
            ownDatabase: describeDatabase(services.config.database),
            directory: services.allianceAuth
              ? `Alliance Auth's database ${services.allianceAuth.connection.displayUrl}`
              : describeDatabase(services.config.database),
          },
        )),
        ...(await pgBossChecks(services.database)),
        ...(await storageChecks(services.config, services.database)),
        ...(services.allianceAuth ? await allianceAuthDataChecks(services.allianceAuth.connection) : []),
      ]);
      io.stdout.write(
        options.format === 'json' ? jsonDocument(findings) : textBlock(formatFindings(findings)),
      );
      if (hasError(findings)) {
        const errors = findings.filter((finding) => finding.level === 'error').map((finding) => finding.id);
        throw new CliError(`system check found ${errors.length} error(s): ${errors.join(', ')}`);
      }
    });
}
