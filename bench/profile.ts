/**
 * Summarises a V8 CPU profile (`npm run bench -- --cpu-prof DIR` writes one for the aa-oidc process):
 * where the self time goes, by package (or aa-oidc's own folder) and by function.
 *
 *     node bench/profile.ts .bench/profiles/CPU.….cpuprofile [--top 40]
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** `node_modules/<package>` (scoped too), aa-oidc's `src/<folder>`, node's internals, or V8's own. */
export function categoryOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return `(${functionName || 'native'})`;
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  const own = /\/(?:dist|src)\/([^/]+)\//.exec(url);
  if (own) return `aa-oidc ${own[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url;
}

function main(): void {
  const [file, ...rest] = process.argv.slice(2);
  const usage = 'usage: node bench/profile.ts FILE.cpuprofile [--top N] (N: functions listed, default 30)\n';
  if (file === '--help' || file === '-h') {
    process.stdout.write(usage);
    return;
  }
  const topIndex = rest.indexOf('--top');
  const top = topIndex === -1 ? 30 : Number(rest[topIndex + 1]);
  if (!file || file.startsWith('-') || !Number.isInteger(top) || top < 1) {
    process.stderr.write(usage);
    process.exitCode = 2;
    return;
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfTime = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });
  let total = 0;
  let idle = 0;
  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, time] of selfTime) {
    const frame = byId.get(id)!.callFrame;
    total += time;
    if (frame.functionName === '(idle)') {
      idle += time;
      continue;
    }
    const category = categoryOf(frame);
    byCategory.set(category, (byCategory.get(category) ?? 0) + time);
    const name = `${frame.functionName || '(anonymous)'} ${category}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + time);
  }
  const busy = total - idle;
  const print = (title: string, entries: Map<string, number>) => {
    process.stdout.write(`\n${title} (share of busy time)\n`);
    for (const [name, time] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${((time / busy) * 100).toFixed(1).padStart(5)} %  ${name}\n`);
    }
  };
  process.stdout.write(
    `${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (${((busy / total) * 100).toFixed(0)} %)\n`,
  );
  print('by package or folder', byCategory);
  print('by function', byFunction);
}

main();
