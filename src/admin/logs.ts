import { CLIENT_ID_MAX } from '../applications/service.ts';
import { hasControlCharacter } from '../applications/text.ts';
import { describeAuditEvent } from '../audit/describe.ts';
import { AUDIT_EVENT_KINDS } from '../audit/events.ts';
import { parseTimeFilter, TIME_FILTER_FORMS } from '../audit/time-filter.ts';
import type { Config } from '../config/load.ts';
import type { ConsoleRequest, ConsoleRoute } from '../console/http.ts';
import { formAlert, formatTime, olderLink, queryText, select, textField } from '../console/ui.ts';
import { MAX_ROW_ID } from '../db/row-id.ts';
import { USERNAME_FIELD_MAXLENGTH } from '../directory/builtin/validation.ts';
import { html, type Html } from '../http/pages/layout.ts';
import { listDeliveryAttempts, RECORDED_OUTCOMES } from '../logout/attempts.ts';
import { listCodeReuse } from '../tokens/issued-codes.ts';
import { type AdminDependencies, type AdminSection, renderAdmin } from './context.ts';
import { fieldError, givenTwice, queryChoice, queryFilter, queryPage } from './filter-parts.ts';

/**
 * The read-only logs of the admin UI: back-channel delivery attempts, code-reuse audits and the
 * audit log, each filterable by application, user and time (and kind or outcome), newest first,
 * one page at a time.
 */

const PAGE = 50;

interface CommonFilter {
  /** The filter as typed, to show it back and to carry it to the next page. */
  query: Record<string, string>;
  /** What every list reads of it: only the bounds given and well formed (the lists' own options). */
  bounds: { clientId?: string; userId?: number; since?: number; until?: number };
  /** A filter that matches nothing (an unknown user, or a refused filter). */
  impossible: boolean;
  /**
   * A filter that is no value of its field (a malformed time, a control character): the page answers
   * 400, as for an unknown kind or outcome. An unknown user is a well-formed filter that matches nothing.
   */
  refused: boolean;
  errors: Map<string, string>;
}

async function commonFilter(deps: AdminDependencies, request: ConsoleRequest): Promise<CommonFilter> {
  const raw = request.ctx.query;
  const filter: CommonFilter = {
    query: {},
    bounds: {},
    impossible: false,
    refused: false,
    errors: new Map(),
  };
  // A filter given twice, too long or holding a control character is refused at its field and matches
  // nothing; a value refused is shown back there (to be corrected) and read no further.
  const given = (name: CommonField): string => {
    const { value, error } = queryFilter(raw, name, FILTER_MAX[name]);
    // No client_id or username holds a control character, however long (PostgreSQL would refuse a NUL
    // byte in the query): said before its length, which shortening would not mend.
    const refusal = hasControlCharacter(value) ? (CONTROL_CHARACTER_REFUSAL[name] ?? error) : error;
    if (refusal === undefined) return value;
    filter.impossible = true;
    filter.refused = true;
    filter.errors.set(name, refusal);
    if (value !== '') filter.query[name] = value;
    return '';
  };
  const clientId = given('client_id');
  const username = given('user');
  const since = given('since');
  const until = given('until');
  if (clientId !== '') {
    filter.query.client_id = clientId;
    filter.bounds.clientId = clientId;
  }
  if (username !== '') {
    filter.query.user = username;
    const user = await deps.directory.profileByUsername(username);
    if (user) filter.bounds.userId = user.id;
    else {
      filter.impossible = true;
      filter.errors.set('user', `No user is named ${username}.`);
    }
  }
  // One instant for both bounds: `1h` and `60m` are the same time.
  const now = Date.now();
  for (const [name, text] of [
    ['since', since],
    ['until', until],
  ] as const) {
    if (text === '') continue;
    filter.query[name] = text;
    const at = parseTimeFilter(text, now);
    if (at === undefined) {
      // Not listed as if the bound were absent.
      filter.impossible = true;
      filter.refused = true;
      filter.errors.set(name, `Not a time: use ${TIME_FILTER_FORMS}.`);
    } else filter.bounds[name] = at;
  }
  const { since: from, until: to } = filter.bounds;
  // Events at or after since and before until: no event can be in an empty range (as `audit list`).
  if (from !== undefined && to !== undefined && from >= to) {
    filter.impossible = true;
    filter.refused = true;
    filter.errors.set(
      'since',
      `Since "${since}" (${new Date(from).toISOString()}) is not before Until "${until}" (${new Date(to).toISOString()}): no event can match; give the earlier time to Since.`,
    );
  }
  return filter;
}

const COMMON_FIELDS = ['client_id', 'user', 'since', 'until'] as const;
type CommonField = (typeof COMMON_FIELDS)[number];

/** The refusal of a filter that holds a control character (a time that does is "Not a time"). */
const CONTROL_CHARACTER_REFUSAL: Readonly<Partial<Record<CommonField, string>>> = {
  client_id: 'Not a client_id: it holds a control character.',
  user: 'Not a username: it holds a control character.',
};

/**
 * The longest value of each common filter, in UTF-16 units as a field's `maxlength` counts them: a
 * client_id's, a username's (its 150 characters may take twice as many), a time's. A longer one is
 * refused at its field, never cut to a value the operator did not give.
 */
const FILTER_MAX: Readonly<Record<CommonField, number>> = {
  client_id: CLIENT_ID_MAX,
  user: USERNAME_FIELD_MAXLENGTH,
  since: 40,
  until: 40,
};

/**
 * The filter field to focus: the first at fault in the page's order (`before` come before the common
 * fields, `after` after them), as on the other admin forms, so that its error is in view and read.
 */
function firstAtFault(
  filter: CommonFilter,
  before: ReadonlyArray<[name: string, error: string | undefined]> = [],
  after: ReadonlyArray<[name: string, error: string | undefined]> = [],
): string | undefined {
  const common = COMMON_FIELDS.map((name): [string, string | undefined] => [name, filter.errors.get(name)]);
  return [...before, ...common, ...after].find(([, error]) => error !== undefined)?.[0];
}

function filterFields(filter: CommonFilter, focused: string | undefined): Html {
  const field = (name: CommonField) => ({
    maxlength: FILTER_MAX[name],
    ...fieldError(name, filter.errors.get(name), focused),
  });
  return html`<div>
      ${textField('Application (client_id)', 'client_id', filter.query.client_id ?? '', field('client_id'))}
    </div>
    <div>${textField('User (username)', 'user', filter.query.user ?? '', field('user'))}</div>
    <div>
      ${textField('Since', 'since', filter.query.since ?? '', { hint: '24h, 7d, 2024-05-01…', ...field('since') })}
    </div>
    <div>${textField('Until', 'until', filter.query.until ?? '', field('until'))}</div>`;
}

/**
 * The page bound of a log paged by id (`?before=`, from its "Older entries" link): no bound when
 * absent, refused when it is no whole number (a mistyped link must not list the newest entries as if
 * it were absent).
 */
function beforeBound(request: ConsoleRequest): { beforeId?: number; error?: string } {
  if (Array.isArray(request.ctx.query.before)) return { error: givenTwice('before') };
  const before = queryText(request.ctx.query, 'before', 20);
  if (before === '') return {};
  if (!/^\d{1,15}$/.test(before))
    return {
      error: `Not a page bound: before= takes a whole number (the id after which older entries are listed, as the "Older entries" link gives it); remove it for the newest entries.`,
    };
  // Above the largest id, every row is before it: no bound (PostgreSQL refuses the number).
  return Number(before) <= MAX_ROW_ID ? { beforeId: Number(before) } : {};
}

function page(
  request: ConsoleRequest,
  section: AdminSection,
  title: string,
  intro: Html,
  filters: Html,
  table: Html,
  pager: Html,
  status = 200,
): void {
  renderAdmin(
    request,
    section,
    title,
    html`<h1>${title}</h1>
      ${intro}
      <form method="get" action="${section}" class="filters" role="search">
        ${filters}
        <div><button type="submit">Filter</button></div>
      </form>
      ${table} ${pager}`,
    { status },
  );
}

/** A retention setting as the pages say it: `1 day`, `90 days`. */
function days(count: number): string {
  return count === 1 ? '1 day' : `${count} days`;
}

/** The kinds the database does not keep, as the audit log's page says it (empty when it keeps all). */
function notKept(config: Config): string {
  const kinds = config.audit.databaseExclude;
  if (!config.audit.database || kinds.length === 0) return '';
  return `, but for ${kinds.join(', ')} events (audit.databaseExclude), which go only to the log and the JSON-lines file`;
}

export function logRoutes(deps: AdminDependencies): ConsoleRoute[] {
  return [
    {
      method: 'GET',
      path: '/admin/deliveries',
      access: 'superuser',
      async handle(request) {
        const filter = await commonFilter(deps, request);
        const { value: outcome, error: outcomeError } = queryChoice(request.ctx.query, 'outcome', [
          'failures',
          ...RECORDED_OUTCOMES,
        ]);
        const query = { ...filter.query, ...(outcome === '' ? {} : { outcome }) };
        const focused = firstAtFault(filter, [], [['outcome', outcomeError]]);
        const { error: boundError, ...bound } = beforeBound(request);
        const rows =
          filter.impossible || outcomeError !== undefined || boundError !== undefined
            ? []
            : await listDeliveryAttempts(deps.db, {
                ...filter.bounds,
                ...(outcome === '' ? {} : { outcome }),
                ...bound,
                limit: PAGE,
              });
        page(
          request,
          '/admin/deliveries',
          'Back-channel deliveries',
          html`<p>
              The final outcome of each back-channel logout delivery: failures always, successes when
              <code>logout.recordSuccessfulDeliveries</code> is on, and logouts <code>cancelled</code> unsent
              because their application stopped receiving them after they were queued (deactivated, its
              back-channel URI removed, switched to revoke-only; the detail says which). "Any failure" leaves
              out successes and cancellations. Outcomes are kept
              ${days(deps.config.logout.recordRetentionDays)} (<code>logout.recordRetentionDays</code>).
              Logouts still queued: <code>aa-oidc bcl list --pending</code>.
            </p>
            ${boundError === undefined ? '' : formAlert(boundError, { focus: focused === undefined })}`,
          html`${filterFields(filter, focused)}
            <div>
              ${select('Outcome', 'outcome', [['', 'Any'], ['failures', 'Any failure'], ...RECORDED_OUTCOMES.map((o) => [o, o] as const)], outcome, fieldError('outcome', outcomeError, focused))}
            </div>`,
          html`<div class="table-wrap">
            <table>
              <caption>
                ${rows.length === 0 ? 'No delivery matches.' : `${rows.length} delivery outcome(s)`}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Application</th>
                  <th scope="col">User id</th>
                  <th scope="col">Trigger</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                ${rows.map(
                  (row) =>
                    html`<tr>
                      <td>${formatTime(row.recordedAt)}</td>
                      <td>
                        ${row.clientName === '' ? '' : html`${row.clientName}<br />`}<code
                          >${row.clientId}</code
                        >
                      </td>
                      <td>${row.userId ?? '—'}</td>
                      <td>${row.trigger}</td>
                      <td>
                        <strong>${row.outcome}</strong
                        >${row.httpStatus === null ? '' : ` (HTTP ${row.httpStatus})`}
                      </td>
                      <td>${row.attempts}</td>
                      <td class="prose">${row.detail ?? ''}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </div>`,
          olderLink('/admin/deliveries', query, rows.at(-1)?.id, rows.length === PAGE),
          filter.refused || outcomeError !== undefined || boundError !== undefined ? 400 : 200,
        );
      },
    },
    {
      method: 'GET',
      path: '/admin/code-reuse',
      access: 'superuser',
      async handle(request) {
        const filter = await commonFilter(deps, request);
        const { page: pageNumber, error: pageError } = queryPage(request.ctx.query, 100_000);
        const focused = firstAtFault(filter);
        const rows =
          filter.impossible || pageError !== undefined
            ? []
            : await listCodeReuse(deps.db, {
                ...filter.bounds,
                offset: (pageNumber - 1) * PAGE,
                limit: PAGE,
              });
        const next = new URLSearchParams({ ...filter.query, page: String(pageNumber + 1) });
        page(
          request,
          '/admin/code-reuse',
          'Code reuse',
          html`<p>
              Authorization codes presented more than once: everything such a code produced was revoked. Codes
              are shown by their SHA-256, never their value.
            </p>
            ${pageError === undefined ? '' : formAlert(pageError, { focus: focused === undefined })}`,
          filterFields(filter, focused),
          html`<div class="table-wrap">
            <table>
              <caption>
                ${rows.length === 0 ? 'No reused code matches.' : `${rows.length} reused code(s)`}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Last reuse</th>
                  <th scope="col">Application</th>
                  <th scope="col">User id</th>
                  <th scope="col">Reuses</th>
                  <th scope="col">Code (SHA-256)</th>
                  <th scope="col">Issued</th>
                </tr>
              </thead>
              <tbody>
                ${rows.map(
                  (row) =>
                    html`<tr>
                      <td>${formatTime(row.lastReuseAt)}</td>
                      <td><code>${row.clientId}</code></td>
                      <td>${row.userId ?? '—'}</td>
                      <td>${row.reuseCount}</td>
                      <td><code>${row.codeHash.slice(0, 16)}…</code></td>
                      <td>${formatTime(row.createdAt)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </div>`,
          rows.length === PAGE
            ? html`<nav class="pager" aria-label="Pages">
                <a href="/admin/code-reuse?${next.toString()}">Older entries</a>
              </nav>`
            : html``,
          filter.refused || pageError !== undefined ? 400 : 200,
        );
      },
    },
    {
      method: 'GET',
      path: '/admin/audit',
      access: 'superuser',
      async handle(request) {
        const filter = await commonFilter(deps, request);
        const { value: kind, error: kindError } = queryChoice(request.ctx.query, 'kind', AUDIT_EVENT_KINDS);
        const kinds = kind === '' ? [] : [kind];
        const focused = firstAtFault(filter, [['kind', kindError]]);
        const query = { ...filter.query, ...(kind === '' ? {} : { kind }) };
        const { error: boundError, ...bound } = beforeBound(request);
        const events =
          filter.impossible || kindError !== undefined || boundError !== undefined
            ? []
            : await deps.auditStore.list({ kinds, ...filter.bounds, ...bound, limit: PAGE });
        page(
          request,
          '/admin/audit',
          'Audit log',
          html`<p>
              Every audit event, kept
              ${days(deps.config.audit.retentionDays)}${deps.config.audit.database ? '' : ' (storage is off: audit.database is false)'}${notKept(deps.config)}.
              The same list on the command line: <code>aa-oidc audit list</code>.
            </p>
            ${boundError === undefined ? '' : formAlert(boundError, { focus: focused === undefined })}`,
          html`<div>
              ${select('Kind', 'kind', [['', 'Any'], ...AUDIT_EVENT_KINDS.map((k) => [k, k] as const)], kind, fieldError('kind', kindError, focused))}
            </div>
            ${filterFields(filter, focused)}`,
          html`<div class="table-wrap">
            <table>
              <caption>
                ${events.length === 0 ? 'No event matches.' : `${events.length} event(s)`}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Kind</th>
                  <th scope="col">What</th>
                  <th scope="col">User id</th>
                  <th scope="col">Application</th>
                  <th scope="col">Request</th>
                </tr>
              </thead>
              <tbody>
                ${events.map(
                  (event) =>
                    html`<tr>
                      <td>${formatTime(event.recordedAt)}</td>
                      <td>${event.kind}</td>
                      <td class="prose">${describeAuditEvent(event.record)}</td>
                      <td>${event.userId ?? '—'}</td>
                      <td>${event.clientId ? html`<code>${event.clientId}</code>` : '—'}</td>
                      <td>${event.requestId ? html`<code>${event.requestId}</code>` : '—'}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </div>`,
          olderLink('/admin/audit', query, events.at(-1)?.id, events.length === PAGE),
          filter.refused || kindError !== undefined || boundError !== undefined ? 400 : 200,
        );
      },
    },
  ];
}
