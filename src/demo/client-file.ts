import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ensurePrivateDirectory, writePrivateFile } from '../util/private-files.ts';

/**
 * The demo application's client secret, kept where the demo relying party (inside `serve`) can read
 * it: `dataDir/demo-client.json`, mode 0600, beside the development `secret.key` (which is more
 * powerful than this secret and sits in the same folder with the same protection). The database only
 * holds the secret's digest, so the plain secret has to live somewhere the serving process can read;
 * the demo runs only in development mode, where `dataDir` is the operator's own folder.
 */
export const DEMO_CLIENT_FILE = 'demo-client.json';

export interface DemoClientCredentials {
  clientId: string;
  clientSecret: string;
}

export function demoClientFilePath(dataDir: string): string {
  return path.join(dataDir, DEMO_CLIENT_FILE);
}

/** Undefined when the file is absent or not in the expected form (the demo then asks for a re-run). */
export function readDemoClient(dataDir: string): DemoClientCredentials | undefined {
  let text: string;
  try {
    text = readFileSync(demoClientFilePath(dataDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as { client_id?: unknown; client_secret?: unknown };
    if (typeof parsed.client_id !== 'string' || typeof parsed.client_secret !== 'string') return undefined;
    return { clientId: parsed.client_id, clientSecret: parsed.client_secret };
  } catch {
    return undefined;
  }
}

/** Writes the file atomically (temporary file, then rename), readable by its owner only. */
export function writeDemoClient(dataDir: string, credentials: DemoClientCredentials): string {
  ensurePrivateDirectory(dataDir);
  const target = demoClientFilePath(dataDir);
  const body = `${JSON.stringify(
    {
      comment:
        'Written by `aa-oidc demo` for the demo relying party at /demo/ (development mode only). Delete it with the demo application.',
      client_id: credentials.clientId,
      client_secret: credentials.clientSecret,
    },
    null,
    2,
  )}\n`;
  writePrivateFile(target, body);
  return target;
}
