import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChild, type Child } from './child-process.ts';
import { missing } from './e2e.ts';

/**
 * Apache httpd as a real relying party or resource server: Debian's apache2 with modules loaded
 * from /usr/lib/apache2/modules, on a loopback port, with a configuration the test writes into a
 * directory of its own (no system configuration is read, nothing is installed).
 */
export const APACHE_BIN = '/usr/sbin/apache2';
export const APACHE_MODULES = '/usr/lib/apache2/modules';

/** The Debian package that brings each module this suite loads beyond apache2's own. */
const MODULE_PACKAGES: Readonly<Record<string, string>> = {
  auth_openidc: 'libapache2-mod-auth-openidc',
  oauth2: 'libapache2-mod-oauth2',
};

/** `false` when apache2 and these modules (`auth_openidc`, `include`, …) are installed, else why not. */
export function apacheUnavailable(modules: readonly string[]): string | false {
  if (!existsSync(APACHE_BIN)) return missing(`${APACHE_BIN} is not installed (apt-get install apache2)`);
  for (const module of modules) {
    if (!existsSync(join(APACHE_MODULES, `mod_${module}.so`))) {
      return missing(
        `the Apache module mod_${module} is not installed (apt-get install ${MODULE_PACKAGES[module] ?? 'apache2'})`,
      );
    }
  }
  return false;
}

export interface RunningApache {
  origin: string;
  /** The test's directory: httpd.conf, the document root `htdocs/`, error.log. */
  directory: string;
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts `apache2 -DFOREGROUND` on 127.0.0.1:`port` with the base configuration (event MPM, the
 * core modules, `modules`) followed by `body`; resolves once it accepts connections. `files` are
 * written below the directory first (paths relative to it).
 */
export async function startApache(
  port: number,
  modules: readonly string[],
  body: string,
  files: Readonly<Record<string, string>> = {},
): Promise<RunningApache> {
  const directory = await mkdtemp(join(tmpdir(), 'aa-oidc-apache-'));
  // Started as root, Apache's children run as nobody: they must read the document root.
  await chmod(directory, 0o755);
  for (const [path, content] of Object.entries(files)) {
    const target = join(directory, path);
    await mkdir(join(target, '..'), { recursive: true, mode: 0o755 });
    await writeFile(target, content, { mode: 0o644 });
  }
  const load = (name: string) => `LoadModule ${name}_module ${APACHE_MODULES}/mod_${name}.so`;
  const config = [
    `ServerRoot ${directory}`,
    `PidFile ${join(directory, 'httpd.pid')}`,
    `ErrorLog ${join(directory, 'error.log')}`,
    'LogLevel warn',
    `Listen 127.0.0.1:${port}`,
    `ServerName 127.0.0.1:${port}`,
    `DefaultRuntimeDir ${directory}`,
    'User nobody',
    'Group nogroup',
    load('mpm_event'),
    ...['authn_core', 'authz_core', 'authz_user', 'mime', 'include', ...modules].map(load),
    'TypesConfig /etc/mime.types',
    `DocumentRoot ${join(directory, 'htdocs')}`,
    body,
  ].join('\n');
  const configPath = join(directory, 'httpd.conf');
  await writeFile(configPath, `${config}\n`);
  const child: Child = startChild(APACHE_BIN, ['-f', configPath, '-DFOREGROUND'], {
    env: { ...process.env, APACHE_RUN_DIR: directory, APACHE_LOCK_DIR: directory },
  });
  const errorLog = () => readFile(join(directory, 'error.log'), 'utf8').catch(() => '');
  const stop = async () => {
    await child.stop('SIGTERM');
    await rm(directory, { recursive: true, force: true });
  };
  try {
    await listening(port, join(directory, 'httpd.pid'), child);
  } catch (error) {
    const log = await errorLog();
    await stop();
    throw new Error(`${(error as Error).message}\n${child.stderr()}\n${log}`.slice(-4000), { cause: error });
  }
  return { origin: `http://127.0.0.1:${port}`, directory, errorLog, stop };
}

/**
 * Resolves once Apache listens on `port`: it writes its pid file once it has bound the port (a
 * connection alone could reach another process that took the port first).
 */
async function listening(port: number, pidFile: string, child: Child): Promise<void> {
  let ended = false;
  void child.exited.then(() => (ended = true));
  for (let attempt = 0; attempt < 600; attempt += 1) {
    if (ended) throw new Error('apache2 ended before it listened');
    const open =
      existsSync(pidFile) &&
      (await new Promise<boolean>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      }));
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`apache2 did not listen on 127.0.0.1:${port}`);
}
