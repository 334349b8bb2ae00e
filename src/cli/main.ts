import { readFileSync } from 'node:fs';
import { Command, CommanderError, type ErrorOptions, type HelpContext } from 'commander';
import { ConfigError } from '../config/load.ts';
import { registerApp } from './commands/app.ts';
import { registerAudit } from './commands/audit.ts';
import { registerBackup } from './commands/backup.ts';
import { registerBcl } from './commands/bcl.ts';
import { registerCheck } from './commands/check.ts';
import { registerDirectory } from './commands/directory.ts';
import { registerWorker } from './commands/worker.ts';
import { registerDemo } from './commands/demo.ts';
import { registerImport } from './commands/import.ts';
import { registerKeys } from './commands/keys.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerPolicy } from './commands/policy.ts';
import { registerServe } from './commands/serve.ts';
import { registerGroup } from './commands/group.ts';
import { registerState } from './commands/state.ts';
import { registerUser } from './commands/user.ts';
import { registerTokens } from './commands/tokens.ts';
import { CliError, type CliIo, failureReason, processIo } from './context.ts';
import { quotedInput, textBlock, textLines } from './output.ts';

/** The version in package.json (two folders up from both src/cli/ and dist/cli/). */
export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

/**
 * The program's commands, subcommands included (`createCommand` makes those). A command group run
 * without one of its commands (`aa-oidc`, `aa-oidc user`) is a usage error like any other: one line
 * naming the commands it takes, exit 1 (`reportUsageErrorsOnOneLine`), where commander would print the
 * whole help to stderr. commander asks for the help "as an error" (`help({ error: true })`) in that
 * case only; `--help` and `aa-oidc help` still print it.
 */
class AaOidcCommand extends Command {
  override createCommand(name?: string): Command {
    return new AaOidcCommand(name);
  }

  override help(context?: HelpContext | ((text: string) => string)): never {
    if (typeof context === 'object' && context.error && this.commands.length > 0) {
      const names = this.createHelp()
        .visibleCommands(this)
        .map((command) => command.name())
        .filter((name) => name !== 'help');
      this.error(`missing command (one of: ${names.join(', ')})`, { code: 'commander.missingCommand' });
    }
    return typeof context === 'function' ? super.help(context) : super.help(context);
  }

  /** Every usage error, commander's own too, with the values typed quoted (`quotedTypedValues`). */
  override error(message: string, errorOptions?: ErrorOptions): never {
    return super.error(quotedTypedValues(this, message, errorOptions?.code), errorOptions);
  }
}

/**
 * commander's usage error `message` (of `code`, raised by `command`) with each value the user typed
 * (an unknown option or command, an argument too many, a value outside an option's choices) quoted as
 * every other message quotes one (`quotedInput`: double quotes, control and bidirectional characters
 * escaped, a long one cut in the middle with its length: `unknown option "--\u001b[31m"`), where
 * commander writes it as typed, in single quotes. The names commander adds (an option's flags, an
 * argument's, a suggestion, the choices) are the program's own; each form is matched whole, so that
 * a quote or a line break in the value typed cannot end it early, and a message of another form is
 * left as it is (its line is still shown with `visibleText`).
 */
function quotedTypedValues(command: Command, message: string, code: string | undefined): string {
  switch (code) {
    case 'commander.unknownOption':
    case 'commander.unknownCommand': {
      // `error: unknown option '--activ'\n(Did you mean --active?)`: the suggestion holds no quote.
      const match = /^error: unknown (option|command) '(.*)'(\n\(Did you mean [^'\n]*\?\))?$/s.exec(message);
      if (!match) return message;
      return `error: unknown ${match[1]} ${quotedInput(match[2]!)}${match[3] ?? ''}`;
    }
    case 'commander.excessArguments': {
      // `error: too many arguments for 'show'. Expected 1 argument but got 2: alice, bob.`, the
      // arguments being the command's `args`.
      const match =
        /^error: too many arguments(?: for '[^']*')?\. Expected \d+ arguments? but got (\d+): /.exec(message);
      if (!match || Number(match[1]) !== command.args.length) return message;
      return `${match[0]}${command.args.map((argument) => quotedInput(argument)).join(', ')}.`;
    }
    case 'commander.invalidArgument': {
      // `error: option '--format <format>' argument 'yaml' is invalid. Allowed choices are table, json, csv.`
      // or `error: command-argument value 'x' is invalid for argument 'name'. …`: the reason holds no quote.
      const option = /^(error: option '[^']*' argument )'(.*)'( is invalid\. [^'\n]*)$/s.exec(message);
      if (option) return `${option[1]}${quotedInput(option[2]!)}${option[3]}`;
      const argument =
        /^(error: command-argument value )'(.*)'( is invalid for argument '[^']*'\. [^'\n]*)$/s.exec(message);
      if (argument) return `${argument[1]}${quotedInput(argument[2]!)}${argument[3]}`;
      return message;
    }
    default:
      return message;
  }
}

export function buildProgram(io: CliIo = processIo()): Command {
  const program = new AaOidcCommand('aa-oidc')
    .description('OpenID Connect provider for Alliance Auth style communities')
    .version(`aa-oidc ${packageVersion()}`, '-V, --version', 'print the version')
    // `-V` only before a command: after one, a word starting with "-V" is the command's (a key id,
    // one thumbprint in 2,048 starting so, which `keys retire` took for the version: printed it and
    // retired nothing, exit 0).
    .enablePositionalOptions()
    // Descriptions wrap beside terms as long as `user`'s (`remove-group [options] <username> <group>`)
    // too: commander's default (40 columns left) would print those lines unwrapped, 200 wide.
    .configureHelp({ minWidthToWrap: 30 })
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
  registerServe(program, io);
  registerWorker(program, io);
  registerCheck(program, io);
  registerBcl(program, io);
  registerMigrate(program, io);
  registerBackup(program, io);
  registerKeys(program, io);
  registerImport(program, io);
  registerApp(program, io);
  registerUser(program, io);
  registerState(program, io);
  registerGroup(program, io);
  registerPolicy(program, io);
  registerDemo(program, io);
  registerTokens(program, io);
  registerAudit(program, io);
  registerDirectory(program, io);
  refuseNegatedPairs(program);
  reportUsageErrorsOnOneLine(program);
  return program;
}

/**
 * A usage error (a missing or unknown option, a value not among an option's choices, an argument too
 * many or too few, an unknown or missing command) is one line on stderr, `aa-oidc: REASON; see aa-oidc COMMAND
 * --help`, as every other failure is, and exits 1: commander's own form (`error: …`, a blank line,
 * the whole help) is not one line that a script can read. `--help` still prints the help.
 */
function reportUsageErrorsOnOneLine(command: Command): void {
  const path: string[] = [];
  for (let at: Command | null = command; at; at = at.parent) path.unshift(at.name());
  command.configureOutput({
    outputError: (message, write) =>
      write(textLines([`aa-oidc: ${usageReason(message)}; see ${path.join(' ')} --help`])),
  });
  for (const sub of command.commands) reportUsageErrorsOnOneLine(sub);
}

/**
 * commander's message as one clause: `error: unknown option "--activ"\n(Did you mean --active?)\n`
 * becomes `unknown option "--activ" (did you mean --active?)`. A line break in a value typed is
 * already an escape (`quotedTypedValues`); any other stays and is shown as `\n` (`textLines`).
 */
function usageReason(message: string): string {
  return message
    .replace(/\n$/, '')
    .replace(/^error: /, '')
    .replace(/\n\(Did you mean (.*)\)$/, ' (did you mean $1)')
    .replace(/\.$/, '');
}

/**
 * `--x` together with `--no-x` (`app update --skip-authorization --no-skip-authorization`) is
 * refused, naming both, as `--logo-url` with `--clear-logo-url` is: commander would let the last one
 * win silently, so that a mistyped script changes what it did not mean to.
 */
function refuseNegatedPairs(program: Command): void {
  const given = new Map<Command, Set<string>>();
  const watch = (command: Command) => {
    for (const negated of command.options.filter((option) => option.negate)) {
      const long = negated.long?.replace(/^--no-/, '--');
      const positive = command.options.find((option) => !option.negate && option.long === long);
      if (!positive) continue;
      for (const option of [positive, negated]) {
        command.on(`option:${option.name()}`, () => {
          const seen = given.get(command) ?? new Set<string>();
          seen.add(option.long!);
          given.set(command, seen);
        });
      }
    }
    for (const sub of command.commands) watch(sub);
  };
  watch(program);
  program.hook('preAction', (_program, action) => {
    const seen = given.get(action);
    if (!seen) return;
    for (const flag of seen) {
      const negated = flag.replace(/^--/, '--no-');
      if (seen.has(negated)) throw new CliError(`${flag} cannot be combined with ${negated}`);
    }
  });
}

/** Runs the CLI and returns the exit code: 0 on success, non-zero with a one-line reason otherwise. */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    refuseUndecodedArguments(argv);
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    // Already written: the help (`--help`, exit 0) or the usage error's line (`reportUsageErrorsOnOneLine`).
    if (error instanceof CommanderError) return error.exitCode;
    io.stderr.write(textBlock(`aa-oidc: ${failureReason(error)}`));
    if (error instanceof CliError) return error.exitCode;
    return error instanceof ConfigError ? 2 : 1;
  }
}

/**
 * Node.js decodes the command line as UTF-8, putting U+FFFD in place of bytes that are not (a
 * terminal or script in Latin-1): such an argument is refused, as the web forms refuse a body that
 * is not UTF-8, so that no state, group or application is named, and no user looked up, by a
 * replacement character in place of what was typed.
 */
function refuseUndecodedArguments(argv: readonly string[]): void {
  const index = argv.findIndex((argument) => argument.includes('\uFFFD'));
  if (index === -1) return;
  throw new CliError(
    `argument ${index + 1} (${quotedInput(argv[index]!).replace(/\uFFFD/g, '\\ufffd')}) holds bytes that are not UTF-8 (each shown here as \\ufffd); use a UTF-8 terminal or script (LANG, LC_ALL)`,
  );
}
