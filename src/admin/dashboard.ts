import { migrationChecks } from '../checks/checks.ts';
import { findingsOver } from '../checks/run.ts';
import type { ConsoleRoute } from '../console/http.ts';
import { formatTime } from '../console/ui.ts';
import { migrationsUnknownToThisRelease, pendingMigrations } from '../db/migrate.ts';
import { html } from '../http/pages/layout.ts';
import { listDeliveryAttempts } from '../logout/attempts.ts';
import { type AdminDependencies, renderAdmin } from './context.ts';

/**
 * The admin dashboard: users by state, applications active and inactive, policy refusals of the last
 * day by stage and reason, recent back-channel delivery failures, the signing keys, and anything an
 * operator must fix (pending migrations, migrations of a newer release, failing system checks).
 */
const DAY_MS = 86_400_000;
/** The refusals broken down by stage and reason: the most recent ones (each is read whole). */
const DENIALS_READ = 1000;

export function dashboardRoutes(deps: AdminDependencies): ConsoleRoute[] {
  return [
    {
      method: 'GET',
      path: '/admin',
      access: 'superuser',
      async handle(request) {
        const since = Date.now() - DAY_MS;
        const [states, apps, denials, denialCounts, failures, keys, pending, unknown, withoutState] =
          await Promise.all([
            // A read-only directory (Alliance Auth) counts its users itself: its states are listed here.
            deps.directoryAdmin
              ? deps.directoryAdmin.listStates()
              : deps.directory
                  .listStates()
                  .then((listed) => listed.map((state) => ({ ...state, userCount: null }))),
            deps.applications.list(),
            deps.auditStore.list({ kinds: ['policy_denied'], since, limit: DENIALS_READ }),
            deps.auditStore.countByKind({ kinds: ['policy_denied'], since }),
            listDeliveryAttempts(deps.db, { outcome: 'failures', limit: 5 }),
            deps.keys.list(),
            pendingMigrations(deps.db, deps.dbKind),
            migrationsUnknownToThisRelease(deps.db),
            deps.directory.countProfiles({ state: null }),
          ]);
        const names = {
          states: states.map((state) => state.name),
          groups: (await deps.directory.listGroups()).map((group) => group.name),
        };
        // A newer release's migrations (W021): this release writes to a schema it does not know.
        const findings = [
          ...migrationChecks({ pending: [], unknown }),
          ...findingsOver(deps.config, apps, keys, names),
        ];
        const active = apps.filter((app) => app.active).length;
        const byStageAndReason = new Map<string, number>();
        for (const event of denials) {
          const key = `${String(event.record.stage)}\u0000${String(event.record.reason)}`;
          // A coalesced event stands for the `repeated` refusals that followed the one stored first
          // (src/oidc/denial-coalescing.ts); any other, for itself.
          const count = typeof event.record.repeated === 'number' ? event.record.repeated : 1;
          byStageAndReason.set(key, (byStageAndReason.get(key) ?? 0) + count);
        }
        const activeKey = keys.find((key) => key.status === 'active');
        const nextKey = keys.find((key) => key.status === 'next');
        const retired = keys.filter((key) => key.status === 'retired').length;
        const attention = pending.length > 0 || findings.length > 0;

        renderAdmin(
          request,
          '/admin',
          'Administration',
          html`<h1>Administration</h1>
            ${
              attention
                ? html`<section
                    class="${pending.length > 0 || findings.some((f) => f.level === 'error') ? 'alert' : 'warn'}"
                    aria-labelledby="attention"
                  >
                    <h2 id="attention">Needs attention</h2>
                    <ul>
                      ${
                        pending.length > 0
                          ? html`<li>
                              ${pending.length} pending database migration(s): run
                              <code>aa-oidc migrate</code>.
                            </li>`
                          : ''
                      }
                      ${findings.map((finding) => html`<li><strong>${finding.id}</strong> ${finding.message} <span class="note">${finding.hint}</span></li>`)}
                    </ul>
                  </section>`
                : html`<p class="ok" role="status">No pending migration, every system check passes.</p>`
            }
            <div class="cards">
              <section class="card" aria-labelledby="users-heading">
                <h2 id="users-heading">Users by state</h2>
                <ul>
                  ${states.map((state) =>
                    state.userCount === null
                      ? html`<li>
                          <a href="/admin/users?${new URLSearchParams({ state: state.name }).toString()}"
                            >${state.name}</a
                          >
                        </li>`
                      : html`<li>${state.name}: <strong>${state.userCount}</strong></li>`,
                  )}
                  <li>No state: <strong>${withoutState}</strong></li>
                </ul>
              </section>
              <section class="card" aria-labelledby="apps-heading">
                <h2 id="apps-heading">Applications</h2>
                <p><span class="big">${active}</span> active</p>
                <p><a href="/admin/apps?active=inactive">${apps.length - active} inactive</a></p>
              </section>
              <section class="card" aria-labelledby="keys-heading">
                <h2 id="keys-heading">Signing keys</h2>
                <p>
                  Active:
                  ${activeKey ? html`<code>${activeKey.kid.slice(0, 12)}…</code> since ${formatTime(activeKey.activatedAt)}` : html`<strong>none</strong>`}
                </p>
                <p>
                  Next: ${nextKey ? html`<code>${nextKey.kid.slice(0, 12)}…</code>` : 'none'} · retired:
                  ${retired}
                </p>
                <p><a href="/admin/keys">Keys</a></p>
              </section>
            </div>
            <h2>Policy refusals in the last 24 hours</h2>
            ${
              byStageAndReason.size === 0
                ? html`<p>None.</p>`
                : html`<div class="table-wrap">
                    <table>
                      <thead>
                        <tr>
                          <th scope="col">Stage</th>
                          <th scope="col">Reason</th>
                          <th scope="col">Refusals</th>
                        </tr>
                      </thead>
                      <tbody>
                        ${[...byStageAndReason.entries()]
                          .sort((a, b) => b[1] - a[1])
                          .map(([key, count]) => {
                            const [stage, reason] = key.split('\u0000');
                            return html`<tr>
                              <td>${stage}</td>
                              <td>${reason}</td>
                              <td>${count}</td>
                            </tr>`;
                          })}
                      </tbody>
                    </table>
                  </div>`
            }
            ${
              (denialCounts.get('policy_denied') ?? 0) > denials.length
                ? html`<p class="note">
                    The most recent ${denials.length} of ${denialCounts.get('policy_denied')} refusals, by
                    stage and reason.
                  </p>`
                : ''
            }
            <p><a href="/admin/audit?kind=policy_denied&amp;since=24h">Every refusal in the audit log</a></p>
            <h2>Recent back-channel delivery failures</h2>
            ${
              failures.length === 0
                ? html`<p>None recorded.</p>`
                : html`<div class="table-wrap">
                    <table>
                      <thead>
                        <tr>
                          <th scope="col">Time</th>
                          <th scope="col">Application</th>
                          <th scope="col">Outcome</th>
                          <th scope="col">Detail</th>
                        </tr>
                      </thead>
                      <tbody>
                        ${failures.map(
                          (row) =>
                            html`<tr>
                              <td>${formatTime(row.recordedAt)}</td>
                              <td>${row.clientName}</td>
                              <td>${row.outcome}</td>
                              <td>${row.detail ?? ''}</td>
                            </tr>`,
                        )}
                      </tbody>
                    </table>
                  </div>`
            }
            <p><a href="/admin/deliveries?outcome=failures">Every failed delivery</a></p>`,
        );
      },
    },
  ];
}
