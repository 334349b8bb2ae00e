import { type Command, Option } from 'commander';
import { type DeliveryAttempt, listDeliveryAttempts, RECORDED_OUTCOMES } from '../../logout/attempts.ts';
import type { BclTestResult, PendingLogout } from '../../logout/service.ts';
import { parseWholeNumber } from '../../util/whole-number.ts';
import { CliError, type CliIo, isoTime, READS_ONLY, withServices } from '../context.ts';
import { filterOption, userAndClientFilter } from '../option-values.ts';
import { type Column, formatOption, type OutputFormat, quotedInput, renderRows } from '../output.ts';

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

/** The most rows `bcl list` prints (the attempt table's longest page). */
const MAX_LIST = 1000;

/** A row of `bcl list`: a logout still to be delivered, or a final outcome the attempt table recorded. */
type ListedLogout = { pending: PendingLogout } | { recorded: DeliveryAttempt };

/** One shape for both (null where a field does not apply), so that a script reads every row alike. */
interface ListedFields {
  state: PendingLogout['state'] | 'done';
  outcome: string | null;
  clientId: string;
  clientName: string | null;
  userId: number | null;
  trigger: string;
  jti: string;
  attempts: number;
  httpStatus: number | null;
  nextAttemptAt: number | null;
  recordedAt: number | null;
  detail: string | null;
}

function fieldsOf(row: ListedLogout): ListedFields {
  if ('pending' in row) {
    const { pending } = row;
    return {
      state: pending.state,
      outcome: null,
      clientId: pending.clientId,
      clientName: null,
      userId: pending.userId,
      trigger: pending.trigger,
      jti: pending.jti,
      attempts: pending.attempts,
      httpStatus: pending.lastHttpStatus,
      nextAttemptAt: pending.nextAttemptAt,
      recordedAt: null,
      detail: null,
    };
  }
  const { recorded } = row;
  return {
    state: 'done',
    outcome: recorded.outcome,
    clientId: recorded.clientId,
    clientName: recorded.clientName,
    userId: recorded.userId,
    trigger: recorded.trigger,
    jti: recorded.jti,
    attempts: recorded.attempts,
    httpStatus: recorded.httpStatus,
    nextAttemptAt: null,
    recordedAt: recorded.recordedAt,
    detail: recorded.detail,
  };
}

const LIST_COLUMNS: readonly Column<ListedFields>[] = [
  { header: 'state', value: (row) => row.state },
  { header: 'outcome', value: (row) => row.outcome },
  // When the next attempt is due (pending), or when the outcome was recorded (done).
  { header: 'time', value: (row) => isoTime(row.nextAttemptAt ?? row.recordedAt) },
  { header: 'client_id', value: (row) => row.clientId },
  { header: 'user_id', value: (row) => row.userId },
  { header: 'trigger', value: (row) => row.trigger },
  { header: 'attempts', value: (row) => row.attempts },
  { header: 'http_status', value: (row) => row.httpStatus },
  { header: 'detail', value: (row) => row.detail },
];

function listedJson(row: ListedFields): Record<string, unknown> {
  return {
    state: row.state,
    outcome: row.outcome,
    client_id: row.clientId,
    client_name: row.clientName,
    user_id: row.userId,
    trigger: row.trigger,
    jti: row.jti,
    attempts: row.attempts,
    http_status: row.httpStatus,
    next_attempt_at: isoTime(row.nextAttemptAt),
    recorded_at: isoTime(row.recordedAt),
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
      // An empty or blank one (an unset variable) names no application; tested, it would only fail.
      const blank = clientIds.find((clientId) => /^\s*$/u.test(clientId));
      if (blank !== undefined)
        throw new CliError(
          `client_id: ${blank === '' ? 'an empty' : 'a blank'} client_id (${quotedInput(blank)}) names no application; give the client_id of each application to test (see aa-oidc app list)`,
        );
      const results = await withServices(io, (services) => services.logout.testDelivery(clientIds));
      io.stdout.write(renderRows(results, COLUMNS, options.format, resultJson));
      const failed = results.filter((row) => row.outcome !== 'success');
      if (failed.length > 0)
        throw new CliError(
          `${failed.length} of ${results.length} test deliveries did not succeed: ${failed.map((row) => quotedInput(row.clientId)).join(', ')}`,
        );
    });

  bcl
    .command('list')
    .description(
      'list the back-channel logouts still to be delivered (state queued, retrying or in_flight; the next ' +
        'due first), then the final outcomes recorded (state done; newest first): failures, cancellations ' +
        '(outcome cancelled, the reason first in the detail), and successes when ' +
        'logout.recordSuccessfulDeliveries is on, kept logout.recordRetentionDays (default 90 days). TIME is when ' +
        'the next attempt is due, or when the outcome was recorded. Reads only; shows no token',
    )
    .addOption(new Option('--pending', 'only the logouts still to be delivered').conflicts('outcome'))
    .addOption(
      new Option(
        '--outcome <outcome>',
        'only final outcomes, of this kind; failures: every one but success and cancelled',
      ).choices(['failures', ...RECORDED_OUTCOMES]),
    )
    .addOption(filterOption('--client-id <client_id>', 'only logouts to this application', 'a client_id'))
    .addOption(filterOption('--username <username>', 'only logouts of this user', 'a username'))
    .addOption(
      new Option(
        '--user-id <id>',
        'only logouts of the user with this id, also one deleted since (the user_id column)',
      ).conflicts('username'),
    )
    .option('--limit <n>', `at most this many rows, the pending ones first (1–${MAX_LIST})`, '100')
    .addOption(formatOption())
    .action(
      async (options: {
        pending?: boolean;
        outcome?: string;
        clientId?: string;
        username?: string;
        userId?: string;
        limit: string;
        format: OutputFormat;
      }) => {
        const limit = parseWholeNumber(options.limit);
        if (limit === undefined || limit < 1 || limit > MAX_LIST)
          throw new CliError(
            `--limit must be an integer from 1 to ${MAX_LIST} (got ${quotedInput(options.limit)})`,
          );
        const userId = options.userId === undefined ? undefined : parseWholeNumber(options.userId);
        if (
          options.userId !== undefined &&
          (userId === undefined || userId < 1 || !Number.isSafeInteger(userId))
        )
          throw new CliError(
            `--user-id must be a user's id, a whole number from 1 to ${Number.MAX_SAFE_INTEGER} (got ${quotedInput(options.userId)})`,
          );
        const rows = await withServices(
          io,
          async (services): Promise<ListedLogout[]> => {
            // A deleted user's logouts (user_deleted) are found by id: no username names them any longer.
            const filter = {
              ...(await userAndClientFilter(services, options)),
              ...(userId === undefined ? {} : { userId }),
            };
            const pending =
              options.outcome === undefined ? await services.logout.pendingLogouts({ ...filter, limit }) : [];
            const room = limit - pending.length;
            const recorded =
              options.pending === true || room === 0
                ? []
                : await listDeliveryAttempts(services.database.db, {
                    ...filter,
                    ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
                    limit: room,
                  });
            return [
              ...pending.map((logout) => ({ pending: logout })),
              ...recorded.map((attempt) => ({ recorded: attempt })),
            ];
          },
          READS_ONLY,
        );
        io.stdout.write(renderRows(rows.map(fieldsOf), LIST_COLUMNS, options.format, listedJson));
        // Told apart from the listing, on stderr: a script reading the JSON or CSV is not misled.
        if (rows.length === limit)
          io.stderr.write(
            `note: the listing stopped at --limit ${limit}; more may match: raise --limit (at most ${MAX_LIST}) or narrow it with --pending, --outcome, --client-id, --username or --user-id\n`,
          );
      },
    );
}
