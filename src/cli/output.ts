import { Option } from 'commander';
import { assertNever } from '../util/assert-never.ts';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The `--format` option every listing takes. */
export function formatOption(defaultFormat: OutputFormat = 'table'): Option {
  return new Option('--format <format>', 'output format').choices(OUTPUT_FORMATS).default(defaultFormat);
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

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Renders rows as an aligned table, JSON (an array of objects keyed by the JSON value of each row)
 * or CSV (RFC 4180, header first).
 */
export function renderRows<Row>(
  rows: readonly Row[],
  columns: readonly Column<Row>[],
  format: OutputFormat,
  toJson: (row: Row) => unknown,
): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(rows.map(toJson), null, 2)}\n`;
    case 'csv': {
      const lines = [columns.map((column) => csvField(column.header)).join(',')];
      for (const row of rows)
        lines.push(columns.map((column) => csvField(cellText(column.value(row)))).join(','));
      return `${lines.join('\r\n')}\r\n`;
    }
    case 'table': {
      const cells = rows.map((row) => columns.map((column) => cellText(column.value(row))));
      const widths = columns.map((column, index) =>
        Math.max(column.header.length, ...cells.map((line) => line[index]!.length)),
      );
      const pad = (line: string[]) =>
        line
          .map((text, index) => text.padEnd(widths[index]!))
          .join('  ')
          .trimEnd();
      const header = columns.map((column) => column.header.toUpperCase());
      return `${[pad(header), ...cells.map(pad)].join('\n')}\n`;
    }
    default:
      return assertNever(format);
  }
}
