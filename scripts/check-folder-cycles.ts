// Fails when two top-level folders of src/ import each other, directly or through others.
// docs/architecture.md keeps the parts in layers; a cycle between folders means no part can be
// read, tested or replaced without the other, so `npm run lint` refuses it.
//
// The graph is built from the TypeScript sources' relative imports (static `import`/`export
// ... from`, and `import('...')` expressions); type-only imports count too, since a type still
// ties one part's meaning to another's. Files directly under src/ (the composition root) are
// left out: they may use every part, and no part may use them (eslint refuses that).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') ? [full] : [];
  });
}

/** The top-level folder of src/ a file belongs to, or null for the files directly under src/. */
function partOf(file: string): string | null {
  const [first, ...rest] = path.relative(root, file).split(path.sep);
  return rest.length > 0 && first !== undefined && first !== '..' ? first : null;
}

const importPattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

/** edges.get(a).get(b) = one file of a that imports b, to name in the message. */
const edges = new Map<string, Map<string, string>>();
for (const file of sourceFiles(root)) {
  const from = partOf(file);
  if (from === null) continue;
  for (const match of readFileSync(file, 'utf8').matchAll(importPattern)) {
    const to = partOf(path.resolve(path.dirname(file), match[1]!));
    if (to === null || to === from) continue;
    const targets = edges.get(from) ?? new Map<string, string>();
    if (!targets.has(to)) targets.set(to, path.relative(path.dirname(root), file));
    edges.set(from, targets);
  }
}

// Depth-first search; a back edge closes a cycle, reported once per set of folders.
const cycles = new Map<string, string[]>();
const state = new Map<string, 'open' | 'done'>();
const stack: string[] = [];
function visit(part: string): void {
  state.set(part, 'open');
  stack.push(part);
  for (const next of [...(edges.get(part)?.keys() ?? [])].sort()) {
    if (state.get(next) === 'open') {
      const cycle = [...stack.slice(stack.indexOf(next)), next];
      const key = [...new Set(cycle)].sort().join(',');
      if (!cycles.has(key)) cycles.set(key, cycle);
    } else if (!state.has(next)) {
      visit(next);
    }
  }
  stack.pop();
  state.set(part, 'done');
}
for (const part of [...edges.keys()].sort()) if (!state.has(part)) visit(part);

if (cycles.size > 0) {
  console.error('Import cycles between folders of src/ (see docs/architecture.md, "The parts"):');
  for (const cycle of cycles.values()) {
    console.error(`  ${cycle.join(' -> ')}`);
    for (let i = 0; i + 1 < cycle.length; i++) {
      console.error(`    ${cycle[i]} -> ${cycle[i + 1]}: ${edges.get(cycle[i]!)!.get(cycle[i + 1]!)}`);
    }
  }
  process.exit(1);
}
if (process.argv.includes('--graph')) {
  for (const [from, targets] of [...edges].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`${from}: ${[...targets.keys()].sort().join(', ')}`);
  }
}
console.log(`No import cycle between the ${state.size} folders of src/ that import one another.`);
