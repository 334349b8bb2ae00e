import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { root } from './doc-commands.ts';

/**
 * docs/architecture.md's "One owner per table" names the module that queries each table: every table
 * of the schema interface (src/db/schema.ts's `Database`) must have its row, and every table and
 * file it names must be one aa-oidc has.
 */
const architecture = readFileSync(new URL('docs/architecture.md', root), 'utf8');

/** The tables of the `Database` interface, the one schema every query is checked against. */
function schemaTables(): string[] {
  const schema = readFileSync(new URL('src/db/schema.ts', root), 'utf8');
  const body = /^export interface Database \{\n([\s\S]*?)^\}/m.exec(schema)?.[1] ?? '';
  return [...body.matchAll(/^ {2}([a-z_][a-z0-9_]*): /gm)].map((m) => m[1]!);
}

/** The rows of the ownership table: the tables of the first column, the paths of the second. */
function ownershipRows(): Array<{ tables: string[]; paths: string[] }> {
  const start = architecture.indexOf('## One owner per table');
  const section = architecture.slice(start, architecture.indexOf('\n## ', start + 1));
  return [...section.matchAll(/^\| (.+?) \| (.+) \|$/gm)]
    .filter((m) => m[1] !== 'table' && !m[1]!.startsWith('---'))
    .map((m) => ({
      tables: [...m[1]!.matchAll(/`([a-z_][a-z0-9_]*)`/g)].map((t) => t[1]!),
      paths: [...m[2]!.matchAll(/`([a-z-]+\/(?:[a-z-]+\/)*(?:[a-z-]+\.ts)?)`/g)].map((p) => p[1]!),
    }));
}

describe('docs/architecture.md', () => {
  it('names the owner of every table of the schema, and only tables and files that exist', () => {
    const tables = schemaTables();
    const rows = ownershipRows();
    assert.ok(tables.length >= 20, `read the schema's tables (${tables.length})`);
    assert.ok(rows.length >= 10, `read the ownership table (${rows.length} rows)`);
    const owned = new Set(rows.flatMap((row) => row.tables));
    const problems = [
      ...tables.filter((table) => !owned.has(table)).map((table) => `no owner for ${table}`),
      ...[...owned].filter((table) => !tables.includes(table)).map((table) => `no table ${table}`),
      ...rows
        .flatMap((row) => row.paths)
        .filter((path) => !existsSync(new URL(`src/${path}`, root)))
        .map((path) => `no src/${path}`),
    ];
    assert.deepEqual(problems, []);
  });
});
