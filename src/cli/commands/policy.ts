import type { Command } from 'commander';
import { explainDecision, type PolicyExplanation } from '../../policy/explain.ts';
import { assertNever } from '../../util/assert-never.ts';
import { lookalikeLookupHint } from '../../util/lookalike-names.ts';
import { CliError, type CliIo, READS_ONLY, withServices } from '../context.ts';
import { lookalikeUserHint, requiredTextOption } from '../option-values.ts';
import {
  type Column,
  formatOption,
  jsonDocument,
  type OutputFormat,
  quotedInput,
  renderRows,
  textLines,
} from '../output.ts';

const FIELDS: ReadonlyArray<{
  header: string;
  value: (row: PolicyExplanation) => string | boolean | string[] | null;
}> = [
  { header: 'client_id', value: (row) => row.clientId },
  { header: 'username', value: (row) => row.username },
  { header: 'decision', value: (row) => row.decision },
  { header: 'reason', value: (row) => row.reason },
  { header: 'explanation', value: (row) => row.explanation },
  { header: 'app_active', value: (row) => row.appActive },
  { header: 'global_gate', value: (row) => row.globalGate },
  { header: 'user_active', value: (row) => row.userActive },
  { header: 'superuser', value: (row) => row.superuser },
  { header: 'oidc_access_via', value: (row) => row.accessVia },
  { header: 'user_state', value: (row) => row.userState },
  { header: 'user_groups', value: (row) => row.userGroups },
  { header: 'app_states', value: (row) => row.appStates },
  { header: 'app_groups', value: (row) => row.appGroups },
  { header: 'needed_states', value: (row) => row.neededStates },
  { header: 'needed_groups', value: (row) => row.neededGroups },
];

const CSV_COLUMNS: readonly Column<PolicyExplanation>[] = FIELDS.map(({ header, value }) => ({
  header,
  value: (row) => value(row),
}));

function explanationJson(row: PolicyExplanation): Record<string, unknown> {
  return Object.fromEntries(FIELDS.map(({ header, value }) => [header, value(row)]));
}

/** Table: one line per field (`FIELD  VALUE`), lists comma-separated, `-` for none. */
function describe(row: PolicyExplanation): string {
  const width = Math.max(...FIELDS.map(({ header }) => header.length));
  const text = (value: string | boolean | string[] | null): string => {
    if (value === null) return '-';
    if (Array.isArray(value)) return value.length === 0 ? '-' : value.join(', ');
    return String(value);
  };
  return textLines(FIELDS.map(({ header, value }) => `${header.padEnd(width)}  ${text(value(row))}`));
}

export function renderExplanation(row: PolicyExplanation, format: OutputFormat): string {
  switch (format) {
    case 'json':
      return jsonDocument(explanationJson(row));
    case 'csv':
      return renderRows([row], CSV_COLUMNS, 'csv', explanationJson);
    case 'table':
      return describe(row);
    default:
      return assertNever(format);
  }
}

export function registerPolicy(program: Command, io: CliIo): void {
  const policy = program.command('policy').description('the access policy');
  policy
    .command('show')
    .description('explain whether a user may use an application, layer by layer, and what is missing')
    .argument('<client_id>', 'the application')
    .addOption(
      requiredTextOption(
        '--username <username>',
        'the user',
        'the username of the user to explain the decision for (see aa-oidc user list)',
      ),
    )
    .addOption(formatOption())
    .action(async (clientId: string, options: { username: string; format: OutputFormat }) => {
      const explanation = await withServices(
        io,
        async (services) => {
          const app = await services.applications.findByClientId(clientId);
          if (!app) {
            const hint = await lookalikeLookupHint(
              'application',
              clientId,
              async (latin) => (await services.applications.findByClientId(latin))?.clientId,
            );
            throw new CliError(
              `no application with client_id ${quotedInput(clientId)} (see aa-oidc app list)${hint}`,
            );
          }
          const profile = await services.directory.profileByUsername(options.username);
          if (!profile) {
            throw new CliError(
              `no user named ${quotedInput(options.username)} (see aa-oidc user list)${await lookalikeUserHint(services, options.username)}`,
            );
          }
          const [states, groups] = await Promise.all([
            services.directory.listStates(),
            services.directory.listGroups(),
          ]);
          return explainDecision(profile, app, {
            states: states.filter((state) => state.oidcAccess).map((state) => state.name),
            groups: groups.filter((group) => group.oidcAccess).map((group) => group.name),
          });
        },
        READS_ONLY,
      );
      io.stdout.write(renderExplanation(explanation, options.format));
    });
}
