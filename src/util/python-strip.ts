/**
 * `text` without the leading and trailing whitespace Python's `str.strip()` removes: the characters
 * `str.isspace()` holds true (Unicode's White_Space and the bidi separators: U+0009–U+000D,
 * U+001C–U+001F, U+0020, U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000). Django's form fields strip with it (`CharField(strip=True)`), its login form's username
 * among them, before `UsernameField` reads the name in NFKC. Not JavaScript's `trim()`, which leaves
 * U+001C–U+001F and U+0085 and removes U+FEFF: a name Django finds would be refused here, and one it
 * refuses found.
 */
export function stripPythonWhitespace(text: string): string {
  // Every such character is one UTF-16 unit; a loop, not a regex, so that no run of inner spaces
  // makes the work grow with the square of the length.
  let start = 0;
  let end = text.length;
  while (start < end && isPythonWhitespace(text.charCodeAt(start))) start += 1;
  while (end > start && isPythonWhitespace(text.charCodeAt(end - 1))) end -= 1;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

function isPythonWhitespace(unit: number): boolean {
  return (
    (unit >= 0x09 && unit <= 0x0d) ||
    (unit >= 0x1c && unit <= 0x20) ||
    unit === 0x85 ||
    unit === 0xa0 ||
    unit === 0x1680 ||
    (unit >= 0x2000 && unit <= 0x200a) ||
    unit === 0x2028 ||
    unit === 0x2029 ||
    unit === 0x202f ||
    unit === 0x205f ||
    unit === 0x3000
  );
}
