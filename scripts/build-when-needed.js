// `npm ci` and `npm start` (the "prepare" and "prestart" scripts): builds dist/ only where it is
// needed, on a Node.js that cannot run the TypeScript sources itself (before 22.18). Without
// TypeScript installed (`npm ci --omit=dev`) it builds nothing; `aa-oidc` then says what to do.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

if (!process.features.typescript) {
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    process.stderr.write('aa-oidc: TypeScript is not installed, so dist/ is not built\n');
  }
  if (tsc) {
    const built = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
    process.exitCode = built.status ?? 1;
  }
}
