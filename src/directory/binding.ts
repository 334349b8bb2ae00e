import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';

/**
 * The directory whose user ids aa-oidc's database keeps. Sessions, grants, tokens, two-factor
 * enrolments and throttles are keyed by the numeric user id alone, and id 6 of one directory is
 * another person than id 6 of another: the database is bound to the directory it first ran with,
 * and a start with another is refused (`directoryBindingChecks`, E010) until `aa-oidc directory
 * rebind` has ended what the old ids hold.
 */
export type DirectoryBinding =
  | { directory: 'builtin' }
  /** `identity`: what tells this Alliance Auth database from another (`readAllianceAuthIdentity`). */
  | { directory: 'alliance-auth'; identity: string };

export type RecordedBinding = DirectoryBinding & { boundAt: number };

/** How the configured directory stands to the recorded one, as the start found it. */
export type DirectoryBindingStatus =
  /** The recorded directory is the configured one (recorded by this start, `recorded` true). */
  | { kind: 'bound'; binding: RecordedBinding; recorded: boolean }
  /** Nothing recorded yet, and this process did not record it (it does not write, or migrations wait). */
  | { kind: 'unrecorded'; current: DirectoryBinding | undefined }
  /** The configured directory could not be read, so it could not be compared. */
  | { kind: 'unknown'; recorded: RecordedBinding | undefined }
  | { kind: 'differs'; recorded: RecordedBinding; current: DirectoryBinding };

const BINDING_ROW = 1;

export async function readDirectoryBinding(
  db: Kysely<Database> | Transaction<Database>,
): Promise<RecordedBinding | undefined> {
  const row = await db
    .selectFrom('directory_binding')
    .select(['directory', 'identity', 'bound_at'])
    .where('id', '=', BINDING_ROW)
    .executeTakeFirst();
  if (!row) return undefined;
  const boundAt = Number(row.bound_at);
  return row.directory === 'alliance-auth'
    ? { directory: 'alliance-auth', identity: row.identity, boundAt }
    : { directory: 'builtin', boundAt };
}

/** Records `binding`, replacing what was recorded (`aa-oidc directory rebind`). */
export async function writeDirectoryBinding(
  db: Kysely<Database> | Transaction<Database>,
  binding: DirectoryBinding,
  at: number,
): Promise<void> {
  const values = { directory: binding.directory, identity: identityOf(binding), bound_at: at };
  await db
    .insertInto('directory_binding')
    .values({ id: BINDING_ROW, ...values })
    .onConflict((oc) => oc.column('id').doUpdateSet(values))
    .execute();
}

/**
 * The status of the configured directory (`current`; undefined when it could not be read) against
 * the recorded one. With `record`, a database without a record is bound to `current` (the first
 * start, or the first after the upgrade that brought the binding); two starts at once record one.
 */
export async function bindDirectory(
  db: Kysely<Database>,
  current: DirectoryBinding | undefined,
  options: { record: boolean; now?: () => number },
): Promise<DirectoryBindingStatus> {
  let recorded = await readDirectoryBinding(db);
  if (current === undefined) return { kind: 'unknown', recorded };
  let recordedHere = false;
  if (!recorded) {
    if (!options.record) return { kind: 'unrecorded', current };
    const result = await db
      .insertInto('directory_binding')
      .values({
        id: BINDING_ROW,
        directory: current.directory,
        identity: identityOf(current),
        bound_at: (options.now ?? Date.now)(),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    recordedHere = Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    recorded = await readDirectoryBinding(db);
    if (!recorded) return { kind: 'unrecorded', current };
  }
  return sameDirectory(recorded, current)
    ? { kind: 'bound', binding: recorded, recorded: recordedHere }
    : { kind: 'differs', recorded, current };
}

export function sameDirectory(a: DirectoryBinding, b: DirectoryBinding): boolean {
  return a.directory === b.directory && identityOf(a) === identityOf(b);
}

/** The directory as a message names it. */
export function describeBinding(binding: DirectoryBinding): string {
  return binding.directory === 'builtin'
    ? 'the built-in directory'
    : `the Alliance Auth database whose first migration is ${binding.identity}`;
}

function identityOf(binding: DirectoryBinding): string {
  return binding.directory === 'builtin' ? '' : binding.identity;
}

/** How often a running `serve` or `worker` reads the recorded directory (`watchDirectoryBinding`). */
export const BINDING_CHECK_MS = 10_000;

/**
 * Reads the recorded directory every `intervalMs` (one query; a failed read is tried again at the
 * next) and resolves `changed` with it once it is no longer `own`: `aa-oidc directory rebind` ran
 * while this process was running, and the user ids it issues for would be another directory's.
 */
export function watchDirectoryBinding(
  db: Kysely<Database>,
  own: DirectoryBinding,
  intervalMs: number,
): { changed: Promise<RecordedBinding>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let reading = false;
  const changed = new Promise<RecordedBinding>((resolve) => {
    timer = setInterval(() => {
      if (reading) return;
      reading = true;
      readDirectoryBinding(db)
        .then(
          (recorded) => {
            if (recorded && !sameDirectory(recorded, own)) {
              clearInterval(timer);
              resolve(recorded);
            }
          },
          () => undefined, // the database is down: /readyz says so; read again later
        )
        .finally(() => (reading = false));
    }, intervalMs);
    timer.unref();
  });
  return { changed, stop: () => clearInterval(timer) };
}

/** What a running process logs when `watchDirectoryBinding` saw another directory recorded. */
export function reboundMeanwhile(recorded: DirectoryBinding, own: DirectoryBinding): { message: string } {
  return {
    message:
      `E010: the database was bound to ${describeBinding(recorded)} (aa-oidc directory rebind) while this process ran with ${describeBinding(own)}: ` +
      'stopping, so that it issues nothing under user ids that now name other people; start it again with the directory the database is bound to',
  };
}
