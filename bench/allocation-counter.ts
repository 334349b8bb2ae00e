/**
 * Loaded into either engine by `npm run bench -- --count-allocation` (`node --import`): measures the
 * bytes the process allocates on V8's heap, by where they were allocated, with V8's sampling heap
 * profiler (objects collected by minor and major collections included, so it counts what was
 * allocated, not what survived). On SIGUSR2 it folds the samples so far into running totals and
 * writes them to the file named by `BENCH_ALLOCATION_COUNTS_FILE` (`{ seq, total, byText }`, bytes,
 * `byText` keyed by place: `src/oidc`, `oidc-provider`, `node:internal`, …), which the bench reads
 * before and after a measurement, and the samples since the previous ask beside it
 * (`FILE.SEQ.heapprofile`). The profiler's figures are estimates from one sample per 16 KiB on
 * average, close over the hundreds of megabytes of a measurement. A bench aid only: never loaded by
 * aa-oidc itself.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  callFrame: { url: string };
  selfSize: number;
  children: ProfileNode[];
}

const file = process.env.BENCH_ALLOCATION_COUNTS_FILE;
const SAMPLING_INTERVAL = 16 * 1024;
const byPlace = new Map<string, number>();
let total = 0;
let seq = 0;

/** The place a script belongs to: a package under node_modules, a folder of src/ or bench/, Node's own. */
function placeOf(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/(src|bench)\/([^/]+)\//.exec(url) ?? /\/(src|bench|bin)\/([^/]+)$/.exec(url);
  if (own) return own[1] === 'src' && own[2]!.includes('.') ? 'src' : `${own[1]}/${own[2]}`;
  if (url.startsWith('node:')) return url.split('/')[0]!;
  return url === '' ? '(V8 and native)' : url;
}

/** Adds a profile's allocation to the totals: a frame without a script counts for its nearest caller's. */
function fold(node: ProfileNode, inherited: string): void {
  const place = node.callFrame.url === '' ? inherited : placeOf(node.callFrame.url);
  if (node.selfSize > 0) {
    total += node.selfSize;
    byPlace.set(place, (byPlace.get(place) ?? 0) + node.selfSize);
  }
  for (const child of node.children) fold(child, place);
}

async function start(session: Session): Promise<void> {
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: SAMPLING_INTERVAL,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}

if (file) {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await start(session);
  let busy = Promise.resolve();
  process.on('SIGUSR2', () => {
    busy = busy.then(async () => {
      const { profile } = (await session.post('HeapProfiler.stopSampling')) as {
        profile: { head: ProfileNode };
      };
      await start(session);
      fold(profile.head, '(V8 and native)');
      seq += 1;
      // The samples since the last ask, for Chrome's memory tab (kept with `npm run bench -- --keep`).
      writeFileSync(`${file}.${seq}.heapprofile`, JSON.stringify(profile));
      writeFileSync(file, JSON.stringify({ seq, total, byText: Object.fromEntries(byPlace) }));
    });
  });
}
