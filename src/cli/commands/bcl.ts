import type { Command } from 'commander';
import type { BclTestResult } from '../../logout/service.ts';
import { CliError, type CliIo, withServices } from '../context.ts';
import { type Column, formatOption, type OutputFormat, renderRows } from '../output.ts';

const COLUMNS: readonly Column<BclTestResult>[] = [
  { header: 'client_id', value: (row) => row.clientId },
  { header: 'name', value: (row) => row.name },
  { header: 'outcome', value: (row) => row.outcome },
  { header: 'http status', value: (row) => row.httpStatus },
  { header: 'detail', value: (row) => row.detail },
];

function resultJson(row: BclTestResult): Record<string, unknown> {
  return {
    client_id: row.clientId,
    name: row.name,
    outcome: row.outcome,
    http_status: row.httpStatus,
    detail: row.detail,
  };
}

export function registerBcl(program: Command, io: CliIo): void {
  const bcl = program.command('bcl').description('back-channel logout');
  bcl
    .command('test')
    .description(
      'deliver a test logout token (for a no-op subject that matches no user) to each application now; ' +
        'one attempt each, through the SSRF gate; exits non-zero unless every delivery succeeded',
    )
    .argument('<client_id...>', 'applications to test')
    .addOption(formatOption())
    .action(async (clientIds: string[], options: { format: OutputFormat }) => {
      // An empty one (an unset variable) names no application, and would end the summary with nothing.
      if (clientIds.includes(''))
        throw new CliError(
          'client_id: an empty client_id ("") names no application; give the client_id of each application to test (see aa-oidc app list)',
        );
      const results = await withServices(io, (services) => services.logout.testDelivery(clientIds));
      io.stdout.write(renderRows(results, COLUMNS, options.format, resultJson));
      const failed = results.filter((row) => row.outcome !== 'success');
      if (failed.length > 0)
        throw new CliError(
          `${failed.length} of ${results.length} test deliveries did not succeed: ${failed.map((row) => row.clientId).join(', ')}`,
        );
    });
}
