#!/usr/bin/env node
// The `aa-oidc` command. It checks the Node.js version before importing anything else, so that an
// unsupported Node.js prints one line naming the version needed instead of a stack trace; keep it to
// syntax that old releases parse.
//
// Then it runs the TypeScript sources directly when this Node.js strips types (22.18 or newer), as
// the tests do, or else the JavaScript built into dist/ (`npm run build`, or a package made by
// `npm pack`). Node.js never strips types under node_modules, so an installed package uses dist/.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const needed = /(\d+)\.(\d+)/.exec(packageJson.engines.node);
const [major, minor] = process.versions.node.split('.').map(Number);
const [neededMajor, neededMinor] = [Number(needed[1]), Number(needed[2])];
if (major < neededMajor || (major === neededMajor && minor < neededMinor)) {
  process.stderr.write(
    `aa-oidc: needs Node.js ${neededMajor}.${neededMinor} or newer; this is Node.js ${process.versions.node} (${process.execPath})\n`,
  );
  process.exit(1);
}

// The long-running commands (`serve`, `worker`) restart themselves once, in place (same process id,
// so a service manager sees no difference), with a runtime tuned for a resident server:
// - `--max-semi-space-size=16` (MB): V8 otherwise lets its young generation grow to 2 × 64 MB in a
//   burst of requests and keeps it: about 100 MB of resident memory for garbage already collected
//   (32 MB was measured under userinfo and introspection: fewer scavenges, each longer, about the
//   same pause per request, and a larger resident set; docs/performance-history.md);
// - `--heap-growing-percent=100`: the old generation is collected once it holds twice what the last
//   collection left, where V8 otherwise lets it grow to up to 4 times that when collecting is cheap
//   beside the work: in a back-channel fan-out, 100–130 MB of garbage in a 150 MB heap at its end,
//   for 35–40 MB of live objects (a collection of those costs tens of milliseconds);
// - `MALLOC_ARENA_MAX=2`: glibc otherwise gives each thread that allocates (libuv's pool signing
//   tokens, hashing passwords) an arena of its own, whose freed memory stays resident;
// - `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` fixed at 128 KiB (glibc's initial values):
//   glibc otherwise raises both to the size of the largest block freed (up to 32 and 64 MB), after
//   which such blocks come from the heap and stay resident once freed: each password hash (argon2,
//   19 MiB) left about 30 MB, and a burst of requests tens of MB more that glibc kept for later.
// Each is left alone when the operator set it (NODE_OPTIONS or node's own flags; the environment,
// GLIBC_TUNABLES included). With the semi-space size given, the operator tunes V8: no V8 flag is
// added, and the restart happens only for the glibc settings that are still unset (none, and no
// restart, once it has happened: the restarted process finds them all set).
const command = process.argv.slice(2).find((argument) => !argument.startsWith('-'));
const semiSpaceSet = [...process.execArgv, ...(process.env.NODE_OPTIONS || '').split(/\s+/)].some((flag) =>
  /^--max-semi-space-size\b/.test(flag),
);
if (
  (command === 'serve' || command === 'worker') &&
  process.platform === 'linux' &&
  typeof process.execve === 'function'
) {
  const env = { ...process.env };
  const tunables = env.GLIBC_TUNABLES || '';
  let glibcAdded = false;
  const glibcDefault = (name, tunable, value) => {
    if (env[name] === undefined && !tunables.includes(`glibc.malloc.${tunable}=`)) {
      env[name] = value;
      glibcAdded = true;
    }
  };
  glibcDefault('MALLOC_ARENA_MAX', 'arena_max', '2');
  glibcDefault('MALLOC_MMAP_THRESHOLD_', 'mmap_threshold', String(128 * 1024));
  glibcDefault('MALLOC_TRIM_THRESHOLD_', 'trim_threshold', String(128 * 1024));
  const heapGrowthSet = process.execArgv.some((flag) => /^--heap-growing-percent\b/.test(flag));
  const v8Flags = semiSpaceSet
    ? []
    : ['--max-semi-space-size=16', ...(heapGrowthSet ? [] : ['--heap-growing-percent=100'])];
  if ((v8Flags.length > 0 || glibcAdded) && mayExecute(process.execPath)) {
    process.execve(
      process.execPath,
      [process.execPath, ...v8Flags, ...process.execArgv, ...process.argv.slice(1)],
      env,
    );
  }
}

// Node.js's compile cache (in NODE_COMPILE_CACHE, or else the system's temporary folder): later
// starts reuse the compiled code, and the TypeScript sources' stripped form, so that the type
// stripper is never loaded (about 10 MB of resident memory less). NODE_DISABLE_COMPILE_CACHE=1 turns it off.
if (typeof module.enableCompileCache === 'function') module.enableCompileCache();

const sources = new URL('../src/cli/run.ts', import.meta.url);
const compiled = new URL('../dist/cli/run.js', import.meta.url);
const installed = fileURLToPath(import.meta.url)
  .split(/[\\/]/)
  .includes('node_modules');
if (process.features.typescript && !installed && existsSync(sources)) {
  await import(sources.href);
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  process.stderr.write(
    `aa-oidc: Node.js ${process.versions.node} does not run TypeScript sources and dist/ is not built; ` +
      'use Node.js 22.18 or newer, or build once with `npm ci && npm run build`\n',
  );
  process.exit(1);
}

/** Whether this process may run `file` (a failed execve ends the process, it cannot be caught). */
function mayExecute(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
