/**
 * A whole number written in decimal (`42`, `-5`, `007`), spaces around it ignored; anything else
 * (`4.5`, `1e3`, `0x10`, `+5`, ``) is undefined. The configuration (a file's or an environment
 * variable's text) and the CLI's options read a number the same way: `--limit " 10"` is what
 * `AA_OIDC_PORT=" 8080"` is, a quoting slip around a number, not another value.
 */
export function parseWholeNumber(text: string): number | undefined {
  const trimmed = text.trim();
  return /^-?\d+$/.test(trimmed) ? Number(trimmed) : undefined;
}

/**
 * A number written in decimal, with or without a fraction (`5`, `5.0`, `-2.5`, `007`), spaces
 * around it ignored; anything else (`0x10`, `1e1`, `0b1`, `+5`, `.5`, `5.`, `Infinity`, ``) is
 * undefined, where `Number()` would read `0x10` as 16 and `1e1` as 10: a value the operator did not
 * write.
 */
export function parseDecimalNumber(text: string): number | undefined {
  const trimmed = text.trim();
  return /^-?\d+(?:\.\d+)?$/.test(trimmed) ? Number(trimmed) : undefined;
}

/**
 * A TCP port a client connects to: a whole number from 1 to 65535 read as `parseWholeNumber` reads
 * it; anything else (`54x2`, `0x10`, `0`, `65536`) is undefined, where node-postgres's `parseInt`
 * would connect to 54 or 0 and `Number()` read 16.
 */
export function parsePortNumber(text: string): number | undefined {
  const port = parseWholeNumber(text);
  return port !== undefined && port >= 1 && port <= 65535 ? port : undefined;
}
