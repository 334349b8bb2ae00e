import type { AuditRecord } from '../../src/audit/events.ts';
import type { PolicyStage } from '../../src/policy/stages.ts';
import type { TestServer } from '../helpers/server.ts';

/** What the policy tests read back from a server: its rejection counters and policy_denied events. */

/** The current value of `aa_oidc_policy_rejections_total{stage,reason}`. */
export async function rejections(server: TestServer, stage: PolicyStage, reason: string): Promise<number> {
  const { values } = await server.app.metrics.policyRejections.get();
  return values.find((value) => value.labels.stage === stage && value.labels.reason === reason)?.value ?? 0;
}

/** The current value of `aa_oidc_authorize_denied_total{reason}`. */
export async function authorizeDenials(server: TestServer, reason: string): Promise<number> {
  const { values } = await server.app.metrics.authorizeDenied.get();
  return values.find((value) => value.labels.reason === reason)?.value ?? 0;
}

/** Collects the `policy_denied` events published while `work` runs. */
export async function policyEvents<T>(
  server: TestServer,
  work: () => Promise<T>,
): Promise<{ result: T; events: Array<Extract<AuditRecord, { kind: 'policy_denied' }>> }> {
  const events: Array<Extract<AuditRecord, { kind: 'policy_denied' }>> = [];
  const unsubscribe = server.app.audit.subscribe({
    name: 'policy-test',
    receive: (record) => {
      if (record.kind === 'policy_denied') events.push(record);
    },
  });
  try {
    const result = await work();
    await server.app.audit.idle();
    return { result, events };
  } finally {
    unsubscribe();
  }
}

/** Runs `work` and returns by how much the rejection counter of `stage`/`reason` moved. */
export async function counted(
  server: TestServer,
  stage: PolicyStage,
  reason: string,
  work: () => Promise<unknown>,
): Promise<number> {
  const before = await rejections(server, stage, reason);
  await work();
  return (await rejections(server, stage, reason)) - before;
}

/**
 * Takes a group away from a user in the built-in directory's tables without publishing the change:
 * what a change made in another directory (Alliance Auth) looks like until its poller notices it.
 * Nothing has revoked the user's codes and tokens yet, so only the policy stands in their way.
 */
export async function removeGroupUnannounced(
  server: TestServer,
  userId: number,
  group: string,
): Promise<void> {
  const { db } = server.app.database;
  const row = await db
    .selectFrom('auth_group')
    .select('id')
    .where('name', '=', group)
    .executeTakeFirstOrThrow();
  await db.deleteFrom('user_group').where('user_id', '=', userId).where('group_id', '=', row.id).execute();
}
