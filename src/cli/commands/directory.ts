import type { Command } from 'commander';
import { forgetFollowedState, heldPollLease } from '../../alliance-auth/poller.ts';
import {
  describeBinding,
  type DirectoryBinding,
  type RecordedBinding,
  writeDirectoryBinding,
} from '../../directory/binding.ts';
import { forgetUserIdFailures } from '../../oidc/interactions/throttle.ts';
import type { Services } from '../../services.ts';
import { CliError, type CliIo, cliActor, withServices } from '../context.ts';
import { lineWriter } from '../output.ts';

/** What `aa-oidc directory rebind` ended or removed (or would, with `--dry-run`). */
interface Rebound {
  from: RecordedBinding | undefined;
  to: DirectoryBinding;
  users: number;
  tokens: number;
  sessions: number;
  grants: number;
  interactions: number;
  enrolments: number;
  codeFailures: number;
  fingerprints: number;
  /** A serve following Alliance Auth meanwhile (its poll lease): `--yes` is refused. */
  pollLease: { owner: string; until: number } | undefined;
}

class DryRunRollback extends Error {}

/** `aa-oidc directory rebind`: bind the database to the configured directory, ending what ids hold. */
export function registerDirectory(program: Command, io: CliIo): void {
  const say = lineWriter(io.stdout);
  const directory = program
    .command('directory')
    .description("the directory this database's user ids belong to (see E010 of aa-oidc check)");

  directory
    .command('rebind')
    .description(
      'bind the database to the configured directory: every browser session ends, every code, token and grant is revoked (back-channel logout tells the applications), two-factor enrolments and second-factor failure counts are removed (audit: admin_change); built-in users stay; refused while a serve follows Alliance Auth (stop every serve and worker first)',
    )
    .option(
      '--dry-run',
      'show what would change, change nothing; exits 1, as --yes would, while --yes would be refused',
    )
    .option('--yes', 'do it: sign everyone out and bind the database to the configured directory')
    .action(async (options: { dryRun?: boolean; yes?: boolean }) => {
      const dryRun = options.dryRun === true;
      if (!dryRun && options.yes !== true)
        throw new CliError(
          'directory rebind signs everyone out and revokes every token, grant and two-factor enrolment; see what it would do with --dry-run, then confirm with --yes',
        );
      const rebound = await withServices(
        io,
        async (services) => {
          const status = services.directoryBinding;
          switch (status.kind) {
            case 'unknown':
              throw new CliError(
                'the configured directory could not be read, so there is nothing to bind to; see aa-oidc check (E009)',
              );
            case 'bound':
              return { already: status.binding };
            case 'unrecorded':
              if (status.current === undefined)
                throw new CliError('the database has pending migrations; run `aa-oidc migrate` first');
              return rebind(services, undefined, status.current, dryRun, cliActor(io));
            case 'differs':
              return rebind(services, status.recorded, status.current, dryRun, cliActor(io));
          }
        },
        { otherDirectory: 'allow' },
      );
      if ('already' in rebound) {
        say(`the database is bound to ${describeBinding(rebound.already)} already; nothing changed`);
        return;
      }
      const from = rebound.from
        ? ` (bound to ${describeBinding(rebound.from)})`
        : ' (bound to no directory yet)';
      say(
        dryRun
          ? `dry run: would bind the database to ${describeBinding(rebound.to)}${from}; nothing changed`
          : `bound the database to ${describeBinding(rebound.to)}${from.replace('(bound', '(was bound')}`,
      );
      const verb = (done: string, would: string) => (dryRun ? would : done);
      say(
        `${verb('revoked', 'would revoke')} ${rebound.tokens} code(s) and token(s), ${verb('ended', 'would end')} ${rebound.sessions} browser session(s) ` +
          `and ${rebound.interactions} sign-in(s) under way, and ${verb('removed', 'would remove')} ${rebound.grants} grant(s), of ${rebound.users} user id(s); ` +
          'back-channel logout tells the applications they were signed in to',
      );
      say(
        `${verb('removed', 'would remove')} ${rebound.enrolments} two-factor enrolment(s), ${rebound.codeFailures} second-factor failure count(s) ` +
          `and ${rebound.fingerprints} remembered Alliance Auth user(s)`,
      );
      // As `--yes` would be: a script tells a rebind that cannot happen now by the exit code.
      if (rebound.pollLease)
        throw new CliError(`dry run: --yes would be refused now: ${pollLeaseHeld(rebound.pollLease)}`);
    });
}

/** Why `rebind --yes` is refused while a serve holds the Alliance Auth poll lease. */
function pollLeaseHeld(lease: { owner: string; until: number }): string {
  return (
    `an aa-oidc serve is following Alliance Auth (its poll lease is held by ${lease.owner} until ${new Date(lease.until).toISOString()}); ` +
    'stop every serve and worker first, or wait for the lease to expire if that serve was killed'
  );
}

/**
 * In one transaction of aa-oidc's database (rolled back with `dryRun`): every user id's codes and
 * tokens revoked, sessions ended and grants removed through the revocation path (back-channel
 * logout queued for the applications that held them), sign-ins under way dropped, two-factor
 * enrolments and second-factor failure counts removed, what the Alliance Auth poller remembers
 * forgotten, and `to` recorded. Built-in users, states and groups stay: they are the built-in
 * directory's own rows.
 */
async function rebind(
  services: Services,
  from: RecordedBinding | undefined,
  to: DirectoryBinding,
  dryRun: boolean,
  actor: string,
): Promise<Rebound> {
  let done: Rebound | undefined;
  let committed: (() => void) | undefined;
  try {
    await services.database.db.transaction().execute(async (trx) => {
      // A serve still following Alliance Auth would go on issuing for the old ids until it noticed
      // (it stops then), and its poll would read the old database.
      const pollLease = await heldPollLease(trx, Date.now());
      if (pollLease && !dryRun) throw new CliError(pollLeaseHeld(pollLease));
      const signedOut = await services.tokens.signOutEveryoneWithin(trx, {
        dryRun,
        actor,
        note: 'directory rebound',
      });
      committed = signedOut.committed;
      const enrolments = await services.twoFactor.forgetEveryone(trx);
      const codeFailures = await forgetUserIdFailures(trx);
      const { fingerprints } = await forgetFollowedState(trx);
      await writeDirectoryBinding(trx, to, Date.now());
      done = {
        from,
        to,
        users: signedOut.users,
        tokens: signedOut.revoked.length,
        sessions: signedOut.sessionsEnded,
        grants: signedOut.grantsRemoved,
        interactions: signedOut.interactions,
        enrolments,
        codeFailures,
        fingerprints,
        pollLease,
      };
      if (dryRun) throw new DryRunRollback();
    });
  } catch (error) {
    if (!(error instanceof DryRunRollback)) throw error;
  }
  const result = done!;
  if (!dryRun) {
    committed?.();
    services.audit.publish({
      kind: 'admin_change',
      entity: 'directory',
      action: 'rebound',
      entity_id: to.directory,
      name: describeBinding(to),
      actor,
      changed_fields: ['directory'],
      details: {
        from: from ? describeBinding(from) : null,
        users: result.users,
        tokens_revoked: result.tokens,
        sessions_ended: result.sessions,
        grants_removed: result.grants,
        two_factor_removed: result.enrolments,
      },
    });
  }
  return result;
}
