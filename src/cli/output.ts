import { Option } from 'commander';
import { assertNever } from '../util/assert-never.ts';
import { displayWidth, padToWidth } from '../util/display-width.ts';
import { escapeUnshownInJson } from '../util/hidden-characters.ts';
import { visibleText } from '../util/visible-text.ts';

// The escaping of every line the CLI writes; directory messages use it too (`listedNameHint`). And
// the quoting of every value an error names (`quotedInput`), the directory's and applications' too.
export { quotedInput, visibleText } from '../util/visible-text.ts';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The `--format` option every listing takes. */
export function formatOption(defaultFormat: OutputFormat = 'table'): Option {
  return new Option('--format <format>', 'output format').choices(OUTPUT_FORMATS).default(defaultFormat);
}

/** The `--format` of a command that writes lines of text, or one JSON document: `text` (default) or `json`. */
export function textOrJsonOption(): Option {
  return new Option('--format <format>', 'output format').choices(['text', 'json']).default('text');
}

export type Cell = string | number | boolean | null | undefined | readonly string[];

export interface Column<Row> {
  header: string;
  value: (row: Row) => Cell;
}

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined) return '';
  if (Array.isArray(cell)) return cell.join(',');
  return String(cell);
}

/**
 * The help of an argument that names a stored user, state or group: its username or name as stored
 * (found regardless of case). A listing shows a control character or a hidden one as an escape
 * (`visibleText`: `\x1b`, `\u202e`), which given as it is names another, or none: the character is
 * given, in bash's `$'…'` quoting, whose escapes read as those characters (`$'Esc\x1b'`). Usernames
 * with such characters come from Alliance Auth; aa-oidc's own refuse them.
 */
export function storedNameHelp(entity: 'user' | 'state' | 'group'): string {
  return `the ${entity}'s ${entity === 'user' ? 'username' : 'name'}; where \`${entity} list\` shows an escape (\\x1b, \\u202e), give the character itself (bash: $'Esc\\x1b')`;
}

/** Lines for the operator (the line writer): each shown with `visibleText`, each ended by a newline. */
export function textLines(lines: readonly string[]): string {
  return lines.map((line) => `${visibleText(line)}\n`).join('');
}

/** Text already broken into lines (a report), written by `textLines`: its own line breaks stay. */
export function textBlock(text: string): string {
  return textLines(text.replace(/\n$/, '').split('\n'));
}

/** Writes one line (`textLines`) to `stream` per call: the `say` of the commands. */
export function lineWriter(stream: NodeJS.WritableStream): (line: string) => void {
  return (line) => {
    stream.write(textLines([line]));
  };
}

/**
 * A JSON document, indented. JSON.stringify escapes C0 controls but leaves DEL, C1 controls, the line
 * and paragraph separators, bidirectional controls and zero-width characters as they are; as \u
 * escapes (`escapeUnshownInJson`) they are the same JSON value and never reach a terminal.
 */
export function jsonDocument(value: unknown): string {
  return `${escapeUnshownInJson(JSON.stringify(value, null, 2))}\n`;
}

// A spreadsheet reads a cell that starts with one of these as a formula (OWASP "CSV injection").
const FORMULA_START = /^[=+\-@\t\r\0]/;

/**
 * A list in one CSV field (a user's groups, an application's states) as a CSV record of its own, its
 * items separated by commas, one holding a comma or a quote, or starting or ending with a space,
 * quoted as RFC 4180 quotes a field (`Pilots,"Wing, Alpha"`): names are free text (an Alliance Auth
 * group may be called `Logistics, Hauling`), and joined as they are, two names would read as three.
 */
function csvListText(items: readonly string[]): string {
  return items.map((item) => (/^\s|[",]|\s$/.test(item) ? `"${item.replace(/"/g, '""')}"` : item)).join(',');
}

/**
 * One CSV field (RFC 4180). A string that a spreadsheet would run as a formula gets a leading `'`
 * (OWASP), and the field is quoted; numbers the program writes (a negative state priority) stay
 * numbers. A list is a CSV record inside the field (`csvListText`). Control characters are shown as
 * escapes, as in the table.
 */
function csvField(cell: Cell): string {
  const raw = Array.isArray(cell) ? csvListText(cell) : cellText(cell);
  const formula = typeof cell !== 'number' && FORMULA_START.test(raw);
  const text = visibleText(formula ? `'${raw}` : raw);
  return formula || /[",]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Renders rows as a table aligned in a terminal's columns (`displayWidth`: an East Asian wide
 * character or an emoji takes two), JSON (an array of objects keyed by the JSON value of each row)
 * or CSV (RFC 4180, header first). Table and CSV cells show control characters as escapes
 * (`visibleText`); CSV cells that would start a spreadsheet formula are neutralised (`csvField`).
 */
export function renderRows<Row>(
  rows: readonly Row[],
  columns: readonly Column<Row>[],
  format: OutputFormat,
  toJson: (row: Row) => unknown,
): string {
  switch (format) {
    case 'json':
      return jsonDocument(rows.map(toJson));
    case 'csv': {
      const lines = [columns.map((column) => csvField(column.header)).join(',')];
      for (const row of rows) lines.push(columns.map((column) => csvField(column.value(row))).join(','));
      return `${lines.join('\r\n')}\r\n`;
    }
    case 'table': {
      const header = columns.map((column) => column.header.toUpperCase());
      const cells = rows.map((row) => columns.map((column) => visibleText(cellText(column.value(row)))));
      // Padded by the columns a terminal draws, not by UTF-16 code units: `漢字` takes four columns
      // in two units, `𝐀` one in two, `é` written as e and U+0301 one in two.
      // Folded, not spread into Math.max: a listing of many thousand rows would overflow the stack.
      const widths = header.map((title, index) =>
        cells.reduce((widest, line) => Math.max(widest, displayWidth(line[index]!)), displayWidth(title)),
      );
      const pad = (line: string[]) =>
        line
          .map((text, index) => padToWidth(text, widths[index]!))
          .join('  ')
          .trimEnd();
      return `${[pad(header), ...cells.map(pad)].join('\n')}\n`;
    }
    default:
      return assertNever(format);
  }
}
