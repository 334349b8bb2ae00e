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
