/**
 * Loaded into the aa-oidc server by `npm run bench -- --count-statements` (`node --import`): counts
 * the SQL statements the process runs (better-sqlite3 statements run, PostgreSQL queries sent), by
 * their text. On SIGUSR2 it writes the counts so far to the file named by
 * `BENCH_STATEMENT_COUNTS_FILE` (`{ seq, total, byText }`), which the bench reads before and after a
 * measurement. A bench aid only: never loaded by aa-oidc itself.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const file = process.env.BENCH_STATEMENT_COUNTS_FILE;
const byText = new Map<string, number>();
let total = 0;
let seq = 0;

function count(text: unknown): void {
  total += 1;
  const key = typeof text === 'string' ? text.replace(/\s+/g, ' ').slice(0, 240) : '(unknown)';
  byText.set(key, (byText.get(key) ?? 0) + 1);
}

type Method = (this: { source?: string }, ...args: unknown[]) => unknown;

if (file) {
  const BetterSqlite3 = require('better-sqlite3') as new (path: string) => {
    prepare(text: string): object;
    close(): void;
  };
  const probe = new BetterSqlite3(':memory:');
  const statementPrototype = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, Method>;
  probe.close();
  for (const name of ['run', 'get', 'all', 'iterate']) {
    const original = statementPrototype[name]!;
    statementPrototype[name] = function (this: { source?: string }, ...args: unknown[]) {
      count(this.source);
      return original.apply(this, args);
    };
  }
  const pg = require('pg') as { Client: { prototype: Record<string, Method> } };
  const query = pg.Client.prototype.query!;
  pg.Client.prototype.query = function (this: object, ...args: unknown[]) {
    const first = args[0] as string | { text?: string } | undefined;
    count(typeof first === 'string' ? first : first?.text);
    return query.apply(this, args);
  };
  process.on('SIGUSR2', () => {
    seq += 1;
    writeFileSync(file, JSON.stringify({ seq, total, byText: Object.fromEntries(byText) }));
  });
}
