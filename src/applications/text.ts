/** True when `text` holds a C0 control character or DEL (NUL included). */
export function hasControlCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** True when a URI text is malformed before parsing: whitespace, control characters, backslashes. */
export function hasUnsafeUriCharacter(text: string): boolean {
  return /[\s\\]/.test(text) || hasControlCharacter(text);
}
