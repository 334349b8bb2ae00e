import { Option } from 'commander';
import { CliError } from './context.ts';

/**
 * A filter of a listing (`audit list --client-id <client_id>`) whose empty value is refused, naming
 * the option and `valid` (what to give instead): a script's unset variable (`--client-id "$CLIENT"`)
 * would otherwise list nothing, or everything, without a word.
 */
export function filterOption(flags: string, description: string, valid: string): Option {
  const option = new Option(flags, description);
  return option.argParser((value: string) => {
    if (value === '')
      throw new CliError(`${option.long} is empty; give ${valid}, or leave ${option.long} out`);
    return value;
  });
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
        `${option.long} ${JSON.stringify(value)} looks like an option, not a file; to name a file whose name starts with "-", write ${JSON.stringify(`./${value}`)}`,
      );
    return value;
  });
}
