import type { Application, ApplicationService } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { StoredUserText } from '../directory/builtin/types.ts';
import type { Directory } from '../directory/port.ts';
import type { KeyService } from '../keys/types.ts';
import { scrubString } from '../util/scrub-text.ts';
import {
  type CheckedSigningKey,
  type DirectoryNames,
  type Finding,
  runChecks,
  spacedNameChecks,
  unfitCharacterNameChecks,
  unfitUserTextChecks,
  whitelistChecks,
} from './checks.ts';

/**
 * The system checks over the running configuration, every registered application, the signing keys
 * and the directory (whitelisted names it lacks, W006; built-in names with spaces in a row, W014;
 * names with a character new names refuse, W015; `aa-oidc check` also judges users' texts for them).
 */
export async function systemChecks(
  config: Config,
  applications: Pick<ApplicationService, 'list'>,
  directory: Pick<Directory, 'listStates' | 'listGroups'>,
  keys: Pick<KeyService, 'list'>,
): Promise<Finding[]> {
  const [apps, signingKeys, states, groups] = await Promise.all([
    applications.list(),
    keys.list(),
    directory.listStates(),
    directory.listGroups(),
  ]);
  const names = { states: states.map((state) => state.name), groups: groups.map((group) => group.name) };
  return findingsOver(config, apps, signingKeys, names);
}

/**
 * `aa-oidc check`'s system checks: those of `systemChecks`, each over what could be read. A part that
 * could not be read (the applications, the signing keys, the directory's states or groups: a grant
 * revoked, a table gone, a database that stopped answering) is an error finding of its own (E009),
 * naming the part, where it is read from (`sources`: a database, its URL without a password) and
 * why; the checks that need it report nothing, the others still run. `serve` and `worker` use
 * `systemChecks`, which stops at such a failure.
 */
export async function systemChecksOverWhatCanBeRead(
  config: Config,
  applications: Pick<ApplicationService, 'list'>,
  directory: Pick<Directory, 'listStates' | 'listGroups'>,
  keys: Pick<KeyService, 'list'>,
  /**
   * Where each part is read from, as E009 names it: aa-oidc's own database, and the directory's, with
   * the checks other than these that report nothing when the directory cannot be read (`alsoSkipped`).
   */
  sources: { ownDatabase: PartSource; directory: PartSource & { alsoSkipped?: string } },
  /**
   * The built-in directory's users whose texts W015 judges (`usersWithTextToJudge`): read here only,
   * not by `serve` nor the dashboard, as it scans the users.
   */
  readUsers?: () => Promise<readonly StoredUserText[]>,
): Promise<Finding[]> {
  const [apps, signingKeys, states, groups, users] = await Promise.allSettled([
    applications.list(),
    keys.list(),
    directory.listStates(),
    directory.listGroups(),
    readUsers?.() ?? [],
  ]);
  const builtin = config.directory.source === 'builtin';
  const unread: Finding[] = [];
  if (apps.status === 'rejected')
    unread.push(
      unreadPart(
        'the registered applications',
        sources.ownDatabase,
        'E001, E006, W003, W004, W005, W006, W009, W013, W022, and W015 of application names',
        apps.reason,
      ),
    );
  if (signingKeys.status === 'rejected')
    unread.push(unreadPart('the signing keys', sources.ownDatabase, 'W008, W011', signingKeys.reason));
  if (users.status === 'rejected')
    unread.push(
      unreadPart(
        "the directory's users",
        sources.directory,
        "W015 of users' email addresses and main characters' names",
        users.reason,
      ),
    );
  // One finding for the directory: both reads fail alike when its database does not answer.
  const directoryReasons = [states, groups].flatMap((read) =>
    read.status === 'rejected' ? [read.reason] : [],
  );
  if (directoryReasons.length > 0) {
    const part =
      states.status === 'rejected' && groups.status === 'rejected'
        ? "the directory's states and groups"
        : states.status === 'rejected'
          ? "the directory's states"
          : "the directory's groups";
    unread.push(
      unreadPart(
        part,
        sources.directory,
        `W006 of the whitelists naming them${builtin ? ', W014, and W015 of their names' : ''}${
          sources.directory.alsoSkipped ? `, and ${sources.directory.alsoSkipped}` : ''
        }`,
        ...directoryReasons,
      ),
    );
  }
  return [
    ...unread,
    ...findingsOver(
      config,
      apps.status === 'fulfilled' ? apps.value : undefined,
      signingKeys.status === 'fulfilled' ? signingKeys.value : undefined,
      {
        states: states.status === 'fulfilled' ? states.value.map((state) => state.name) : undefined,
        groups: groups.status === 'fulfilled' ? groups.value.map((group) => group.name) : undefined,
      },
    ),
    ...(users.status === 'fulfilled' ? unfitUserTextChecks(users.value) : []),
  ];
}

/**
 * Where `aa-oidc check` reads a part from, as E009 names it (`described`: `Alliance Auth's database
 * URL`, `PostgreSQL at HOST:PORT (database NAME)`), and the address in it (`address`: the URL without
 * its password, as every message shows it), which what the database answered may name already.
 */
export interface PartSource {
  described: string;
  address: string;
}

/**
 * E009: a part of what `aa-oidc check` reads that it could not read, from `source`, with the checks
 * that therefore report nothing (`skipped`) and each distinct reason (what the database or the
 * directory answered; whatever looks like a credential is hidden, as in a log line). The source is
 * named once: not again when every answer names its address. An error: a check that could not look
 * has not found the system sound.
 */
function unreadPart(what: string, source: PartSource, skipped: string, ...reasons: unknown[]): Finding {
  const answers = [
    ...new Set(
      reasons.map((reason) =>
        scrubbedAnswer(
          (reason instanceof Error ? reason.message : String(reason)).replace(/\s+/g, ' ').trim(),
          source.address,
        ),
      ),
    ),
  ];
  const from = answers.every((answer) => answer.includes(source.address)) ? '' : ` from ${source.described}`;
  return {
    id: 'E009',
    level: 'error',
    message: `could not read ${what}${from}, so the checks that need them report nothing (${skipped}): ${answers.join('; ')}`,
    // The answer names what to mend when the directory knows it (a grant, AA's statement timeout).
    hint: 'mend what stopped the read, as the message says (a database that does not answer, a grant the login lacks, a table or column the database lacks), then run aa-oidc check again',
  };
}

/**
 * E009 for aa-oidc's own database when `aa-oidc check` could not open or read it at all (a missing
 * SQLite file, a server that refused the connection or the login): only the checks of the
 * configuration alone ran.
 */
export function unreadDatabase(source: PartSource, reason: unknown): Finding {
  return unreadPart(
    'the applications, the signing keys and the directory',
    source,
    'every check but those of the configuration alone',
    reason,
  );
}

/**
 * E009 for the two-factor enrolments, when `aa-oidc check` could not read them to try their secrets
 * (W023 then reports nothing).
 */
export function unreadTwoFactorEnrolments(source: PartSource, reason: unknown): Finding {
  return unreadPart('the two-factor enrolments', source, 'W023', reason);
}

/**
 * `answer` with whatever looks like a credential hidden (`scrubString`), and the source's `address`
 * shown as it is where the answer names it: the address is without its password already (`***`),
 * which scrubbing would turn into `[redacted]`, as if the answer named another URL. Only the scrubbed
 * text is searched, for the scrubbed address: what is put back is the address, never a character of
 * the answer that scrubbing hid.
 */
function scrubbedAnswer(answer: string, address: string): string {
  const scrubbed = scrubString(answer);
  const scrubbedAddress = scrubString(address);
  return scrubbedAddress === address ? scrubbed : scrubbed.replaceAll(scrubbedAddress, address);
}

/**
 * Every check's findings over what `systemChecks` reads, for a caller that has read it already (the
 * admin dashboard): one list of checks, wherever they are shown. A part undefined could not be read
 * (`systemChecksOverWhatCanBeRead`): the checks that need it report nothing. A state or group kind
 * not read is judged by nobody: no whitelisted name of it is missing from the directory (W006), none
 * of its names is judged for its spelling (W014, W015).
 */
export function findingsOver(
  config: Config,
  apps: readonly Application[] | undefined,
  signingKeys: readonly CheckedSigningKey[] | undefined,
  read: { states: readonly string[] | undefined; groups: readonly string[] | undefined },
): Finding[] {
  const names: DirectoryNames = { states: read.states ?? [], groups: read.groups ?? [] };
  const whitelisted =
    read.states && read.groups
      ? (apps ?? [])
      : (apps ?? []).map((app) => ({
          ...app,
          states: read.states ? app.states : [],
          groups: read.groups ? app.groups : [],
        }));
  return [
    ...runChecks(config, apps, signingKeys),
    ...whitelistChecks(whitelisted, names),
    ...spacedNameChecks(config.directory.source, names),
    ...unfitCharacterNameChecks(config.directory.source, names, apps ?? []),
  ];
}
