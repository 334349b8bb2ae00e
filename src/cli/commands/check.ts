import type { Command } from 'commander';
import { allianceAuthDataChecks } from '../../alliance-auth/data-checks.ts';
import {
  configurationChecks,
  directoryBindingChecks,
  type Finding,
  formatFindings,
  hasError,
  migrationChecks,
  runChecks,
  signingKeyLoadChecks,
  twoFactorSecretChecks,
} from '../../checks/checks.ts';
import {
  systemChecksOverWhatCanBeRead,
  unreadDatabase,
  unreadTwoFactorEnrolments,
} from '../../checks/run.ts';
import { type Config, ConfigError } from '../../config/load.ts';
import { describeDatabase } from '../../db/errors.ts';
import {
  migrationsThatWouldStop,
  migrationsUnknownToThisRelease,
  pendingMigrations,
} from '../../db/migrate.ts';
import { usersWithTextToJudge } from '../../directory/builtin/reads.ts';
import { unloadableSigningKeys } from '../../keys/store.ts';
import { usersWithUnreadableTwoFactorSecrets } from '../../two-factor/service.ts';
import type { Services } from '../../services.ts';
import { pgBossChecks, storageChecks } from '../storage-checks.ts';
import { CliError, type CliIo, cliConfig, withServices } from '../context.ts';
import { jsonDocument, textBlock, textOrJsonOption } from '../output.ts';

export function registerCheck(program: Command, io: CliIo): void {
  program
    .command('check')
    .description('run the system checks; exits non-zero when any finding is an error')
    .addOption(textOrJsonOption())
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
      // Every other outcome is findings too, printed in the format asked for (a monitoring script reading
      // --format json always gets one document): a configuration that cannot be loaded is E011 (and
      // exit code 2, as for every command); a database that cannot be opened or read at all is E009 of
      // aa-oidc's database, pending migrations E012 (E014 for one that would stop, as migrate's dry
      // run foresees), each with the checks of the configuration alone;
      // signing keys that AA_OIDC_SECRET_KEY cannot decrypt are E013, the other checks still run;
      // users' two-factor secrets it cannot decrypt are W023.
      let config: Config;
      try {
        config = cliConfig(io, { quiet: true });
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        writeFindings(io, options.format, configurationChecks(error.message));
        throw error;
      }
      const ownDatabase = describeDatabase(config.database);
      let findings: Finding[];
      // What failed once the services were open is no failure to open aa-oidc's database: not E009.
      let opened = false;
      try {
        findings = await withServices(
          io,
          (services) => {
            opened = true;
            return checksOf(services);
          },
          {
            config,
            allianceAuthUnreadableAtStart: 'report',
            otherDirectory: 'allow',
            pendingMigrations: 'allow',
            newerRelease: 'report',
            loadSigningKeys: false,
          },
        );
      } catch (error) {
        if (opened) throw error;
        findings = [
          unreadDatabase({ described: ownDatabase, address: ownDatabase }, error),
          ...runChecks(config, undefined),
        ];
      }
      writeFindings(io, options.format, findings);
      if (hasError(findings)) {
        const errors = findings.filter((finding) => finding.level === 'error').map((finding) => finding.id);
        throw new CliError(`system check found ${errors.length} error(s): ${errors.join(', ')}`);
      }
    });
}

function writeFindings(io: CliIo, format: 'text' | 'json', findings: readonly Finding[]): void {
  io.stdout.write(format === 'json' ? jsonDocument(findings) : textBlock(formatFindings(findings)));
}

/**
 * The findings over the opened services: on a database with pending migrations (E012, and E014 for
 * each that would stop on it as it is), those of the configuration alone; otherwise every check, the
 * signing keys' private parts tried (E013) rather than loaded (a key that does not load stops the
 * start of every other command), and the secrets of confirmed two-factor enrolments tried (W023).
 */
async function checksOf(services: Services): Promise<Finding[]> {
  const { db, kind } = services.database;
  const pending = await pendingMigrations(db, kind);
  const migrations = migrationChecks({
    pending,
    wouldStop: await migrationsThatWouldStop(db, kind, pending),
    unknown: await migrationsUnknownToThisRelease(db),
  });
  if (hasError(migrations)) return [...migrations, ...runChecks(services.config, undefined)];
  const ownDatabase = describeDatabase(services.config.database);
  return [
    ...migrations,
    // Keys that cannot be read at all are E009 of the signing keys, below.
    ...signingKeyLoadChecks(await unloadableSigningKeys(db, services.config).catch(() => [])),
    ...(await usersWithUnreadableTwoFactorSecrets(db, services.config.secretKey).then(
      twoFactorSecretChecks,
      (error: unknown) => [
        unreadTwoFactorEnrolments({ described: ownDatabase, address: ownDatabase }, error),
      ],
    )),
    ...(await systemChecksOfTheDatabase(services, ownDatabase)),
  ];
}

async function systemChecksOfTheDatabase(services: Services, ownDatabase: string): Promise<Finding[]> {
  const aa = services.allianceAuth;
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
}
