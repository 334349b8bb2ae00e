/**
 * True when `text` holds a control character: C0 (NUL included), DEL or C1 (U+0080–U+009F, where
 * U+009B starts a terminal escape sequence as ESC [ does).
 */
export function hasControlCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}

/** True when a URI text is malformed before parsing: whitespace, control characters, backslashes. */
export function hasUnsafeUriCharacter(text: string): boolean {
  return /[\s\\]/.test(text) || hasControlCharacter(text);
}
