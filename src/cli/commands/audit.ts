import { Option, type Command } from 'commander';
import { describeAuditEvent } from '../../audit/describe.ts';
import { AUDIT_EVENT_KINDS, type AuditEventKind } from '../../audit/events.ts';
import { parseTimeFilter, TIME_FILTER_FORMS } from '../../audit/time-filter.ts';
import { MAX_AUDIT_PAGE, type StoredAuditEvent } from '../../audit/store.ts';
import { parseWholeNumber } from '../../util/whole-number.ts';
import { CliError, type CliIo, isoTime, READS_ONLY, withServices } from '../context.ts';
import { filterOption, userIdFilter } from '../option-values.ts';
import { type Column, formatOption, type OutputFormat, quotedInput, renderRows } from '../output.ts';

const COLUMNS: readonly Column<StoredAuditEvent>[] = [
  { header: 'time', value: (event) => isoTime(event.recordedAt) },
  { header: 'kind', value: (event) => event.kind },
  { header: 'user_id', value: (event) => event.userId },
  { header: 'client_id', value: (event) => event.clientId },
  { header: 'what', value: (event) => describeAuditEvent(event.record) },
];

/** The stored record itself (`time`, `kind`, the event's fields, `request_id`), plus its row id. */
function eventJson(event: StoredAuditEvent): Record<string, unknown> {
  return { id: event.id, ...event.record };
}

/** `--since` / `--until`: see `parseTimeFilter`. */
export function parseTime(option: string, value: string, now = Date.now()): number {
  const parsed = parseTimeFilter(value, now);
  if (parsed === undefined)
    throw new CliError(`${option} ${quotedInput(value)} is not a time: use ${TIME_FILTER_FORMS}`);
  return parsed;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `aa-oidc audit list`: the audit events kept in the database (`audit.database`), newest first. */
export function registerAudit(program: Command, io: CliIo): void {
  const audit = program
    .command('audit')
    .description('the audit log kept in the database (audit.retentionDays, default 90 days)');

  audit
    .command('list')
    .description('list audit events, newest first')
    .addOption(
      new Option('--kind <kind>', `only this kind (repeatable): ${AUDIT_EVENT_KINDS.join(', ')}`)
        .argParser(collect)
        .default([]),
    )
    .option('--since <time>', `only events at or after this time: ${TIME_FILTER_FORMS}`)
    .option('--until <time>', 'only events before this time (the same forms as --since)')
    .addOption(filterOption('--username <username>', 'only events about this user', 'a username'))
    .addOption(filterOption('--client-id <client_id>', 'only events about this application', 'a client_id'))
    .option('--limit <n>', `at most this many events (1–${MAX_AUDIT_PAGE})`, '100')
    .addOption(formatOption())
    .action(
      async (options: {
        kind: string[];
        since?: string;
        until?: string;
        username?: string;
        clientId?: string;
        limit: string;
        format: OutputFormat;
      }) => {
        for (const kind of options.kind) {
          if (!(AUDIT_EVENT_KINDS as readonly string[]).includes(kind))
            throw new CliError(
              `--kind ${quotedInput(kind)} is not an audit event kind; valid: ${AUDIT_EVENT_KINDS.join(', ')}`,
            );
        }
        const limit = parseWholeNumber(options.limit);
        if (limit === undefined || limit < 1 || limit > MAX_AUDIT_PAGE)
          throw new CliError(
            `--limit must be an integer from 1 to ${MAX_AUDIT_PAGE} (got ${quotedInput(options.limit)})`,
          );
        const now = Date.now();
        const since = options.since === undefined ? undefined : parseTime('--since', options.since, now);
        const until = options.until === undefined ? undefined : parseTime('--until', options.until, now);
        // Events at or after --since and before --until: no event can be in an empty range.
        if (since !== undefined && until !== undefined && since >= until)
          throw new CliError(
            `--since ${quotedInput(options.since!)} (${isoTime(since)}) is not before --until ${quotedInput(options.until!)} (${isoTime(until)}): no event can match; give the earlier time to --since`,
          );
        const events = await withServices(
          io,
          async (services) => {
            const userId = await userIdFilter(services, options.username);
            const notKept = options.kind.filter((kind) =>
              (services.config.audit.databaseExclude as readonly string[]).includes(kind),
            );
            if (!services.config.audit.database)
              io.stderr.write(
                'note: the database keeps no audit events (audit.database is false); they go to the log and the JSON-lines file, and only those kept before are listed\n',
              );
            else if (notKept.length > 0)
              io.stderr.write(
                `note: the database does not keep ${notKept.join(', ')} events (audit.databaseExclude); they go to the log and the JSON-lines file, and only those kept before are listed\n`,
              );
            return services.auditStore.list({
              kinds: options.kind as AuditEventKind[],
              ...(since === undefined ? {} : { since }),
              ...(until === undefined ? {} : { until }),
              ...(userId === undefined ? {} : { userId }),
              ...(options.clientId === undefined ? {} : { clientId: options.clientId }),
              limit,
            });
          },
          READS_ONLY,
        );
        io.stdout.write(renderRows(events, COLUMNS, options.format, eventJson));
      },
    );
}
