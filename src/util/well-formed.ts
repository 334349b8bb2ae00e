const LONE_SURROGATE_CANDIDATE = /[\uD800-\uDFFF]/;

/**
 * `text` as PostgreSQL stores it: a lone surrogate (which `JSON.stringify` writes as a `\uD800`
 * escape, refused by PostgreSQL's JSON parser) becomes U+FFFD, as the UTF-8 encoding of a text
 * parameter makes it. A well-formed text is returned as it is.
 */
export function wellFormed(text: string): string {
  return LONE_SURROGATE_CANDIDATE.test(text) ? Buffer.from(text, 'utf8').toString('utf8') : text;
}
