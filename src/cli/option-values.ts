import { Option } from 'commander';
import { lookalikeLookupHint } from '../util/lookalike-names.ts';
import type { Services } from '../services.ts';
import { quotedInput } from './output.ts';
import { CliError } from './context.ts';

/**
 * Why `value` of `option` names nothing: empty, or nothing but white space (a blank one, `"   "`:
 * no username, client_id, state or group name is, and a search for it is a variable that held only
 * spaces); undefined for any other value.
 */
function emptyOrBlank(option: Option, value: string): string | undefined {
  if (value === '') return `${option.long} is empty`;
  if (/^\s+$/u.test(value)) return `${option.long} is blank (${quotedInput(value)})`;
  return undefined;
}

/**
 * A filter of a listing (`audit list --client-id <client_id>`) whose empty or blank value is refused,
 * naming the option and `valid` (what to give instead): a script's unset variable
 * (`--client-id "$CLIENT"`) would otherwise list nothing, or everything, without a word.
 */
export function filterOption(flags: string, description: string, valid: string): Option {
  const option = new Option(flags, description);
  return option.argParser((value: string) => {
    const refused = emptyOrBlank(option, value);
    if (refused !== undefined) throw new CliError(`${refused}; give ${valid}, or leave ${option.long} out`);
    return value;
  });
}

/**
 * An option a command cannot run without (`tokens revoke-user --username <username>`) whose empty or
 * blank value is refused, naming the option and `valid`: looked up as it is,
 * `--username "$USER_TO_REVOKE"` with the variable unset would say only that no user is named "".
 */
export function requiredTextOption(flags: string, description: string, valid: string): Option {
  const option = new Option(flags, description).makeOptionMandatory();
  return option.argParser((value: string) => {
    const refused = emptyOrBlank(option, value);
    if (refused !== undefined) throw new CliError(`${refused}; give ${valid}`);
    return value;
  });
}

/**
 * A listing's `--username` and `--client-id` filters (`tokens audit`, `bcl list`) as the ids it
 * filters by; an unknown user or application is refused, naming it, rather than listing nothing.
 */
export async function userAndClientFilter(
  services: Pick<Services, 'directory' | 'applications'>,
  options: { username?: string; clientId?: string },
): Promise<{ userId?: number; clientId?: string }> {
  const userId = await userIdFilter(services, options.username);
  if (
    options.clientId !== undefined &&
    (await services.applications.findByClientId(options.clientId)) === undefined
  )
    throw await services.applications.unknownClientId(options.clientId);
  return {
    ...(userId === undefined ? {} : { userId }),
    ...(options.clientId === undefined ? {} : { clientId: options.clientId }),
  };
}

/** A listing's `--username` filter as the user's id; an unknown username is refused, naming it. */
export async function userIdFilter(
  services: Pick<Services, 'directory'>,
  username: string | undefined,
): Promise<number | undefined> {
  if (username === undefined) return undefined;
  const user = await services.directory.profileByUsername(username);
  if (!user)
    throw new CliError(
      `no user named ${quotedInput(username)} (see 'aa-oidc user list')${await lookalikeUserHint(services, username)}`,
    );
  return user.id;
}

/** `lookalikeLookupHint` for a username the directory (built-in or Alliance Auth) has no user by. */
export function lookalikeUserHint(services: Pick<Services, 'directory'>, username: string): Promise<string> {
  return lookalikeLookupHint(
    'user',
    username,
    async (latin) => (await services.directory.profileByUsername(latin))?.username,
  );
}

/**
 * An option naming a file (`backup --to <file>`) whose value starts with "-" is refused: commander
 * takes whatever follows the option as its value, so `--to --help` or a forgotten value before the
 * next option (`--pem --as next`) would name a file. A file whose name starts with "-" is named as
 * `./-name`.
 */
export function fileOption(flags: string, description: string): Option {
  const option = new Option(flags, description);
  return option.argParser((value: string) => {
    if (value.startsWith('-'))
      throw new CliError(
        `${option.long} ${quotedInput(value)} looks like an option, not a file; to name a file whose name starts with "-", write ${JSON.stringify(`./${value}`)}`,
      );
    return value;
  });
}
