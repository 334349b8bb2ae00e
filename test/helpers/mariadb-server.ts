import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { type Child, startChild } from './child-process.ts';
import { commandUnavailable, missing } from './e2e.ts';
import { startOnFreePort } from './server.ts';

/** Debian's MariaDB server and its installer (in /usr/sbin and /usr/bin, which a non-root PATH may lack). */
const MARIADBD = existsSync('/usr/sbin/mariadbd') ? '/usr/sbin/mariadbd' : 'mariadbd';
const INSTALL_DB = existsSync('/usr/bin/mariadb-install-db')
  ? '/usr/bin/mariadb-install-db'
  : 'mariadb-install-db';

/** `false` when a test may start a MariaDB server of its own, otherwise the reason to skip. */
export function mariadbServerUnavailable(): string | false {
  // The installer has no harmless option to run as a probe (it installs into the default folder).
  if (INSTALL_DB === 'mariadb-install-db')
    return missing('mariadb-install-db is not installed (apt-get install mariadb-server)');
  return commandUnavailable(MARIADBD, ['--version'], 'mariadb-server');
}

/** A MariaDB server a test started, for what the machine's shared one cannot be made to do (TLS). */
export interface MariaDbServer {
  port: number;
  /** The administrator's URL (root, no password, over TCP without TLS). */
  rootUrl: string;
  /** Starts it again on its port, after `stop` or while it runs, with `tls` as `startMariadbServer` takes it. */
  restart(tls?: MariaDbTls): Promise<void>;
  stop(): Promise<void>;
}

/** The certificate a server presents, and the authority it checks client certificates by (if any). */
export interface MariaDbTls {
  certFile: string;
  keyFile: string;
  clientCaFile?: string;
}

/**
 * Starts a MariaDB server of the test's own on a free loopback port, its data in `folder` (made with
 * mariadb-install-db, ignoring the machine's my.cnf), presenting `tls` when given; resolves once it
 * takes connections.
 */
export async function startMariadbServer(folder: string, tls?: MariaDbTls): Promise<MariaDbServer> {
  const dataDir = path.join(folder, 'mariadb-data');
  const asRoot = process.getuid?.() === 0;
  // The server refuses to run as root unless told to; as another user it runs as that user.
  const user = asRoot ? ['--user=root'] : [];
  await promisify(execFile)(INSTALL_DB, [
    '--no-defaults',
    ...user,
    `--datadir=${dataDir}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    '--skip-name-resolve',
  ]);
  let child: Child | undefined;
  const start = async (port: number, tls?: MariaDbTls) => {
    child = startChild(MARIADBD, [
      '--no-defaults',
      ...user,
      `--datadir=${dataDir}`,
      `--socket=${path.join(folder, 'mariadb.sock')}`,
      `--pid-file=${path.join(folder, 'mariadb.pid')}`,
      '--bind-address=127.0.0.1',
      `--port=${port}`,
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=16M',
      ...(tls ? [`--ssl-cert=${tls.certFile}`, `--ssl-key=${tls.keyFile}`] : []),
      ...(tls?.clientCaFile ? [`--ssl-ca=${tls.clientCaFile}`] : []),
    ]);
    await child.waitFor(/ready for connections/, 'MariaDB ready for connections');
    return port;
  };
  const stop = async () => {
    await child?.stop('SIGTERM');
    child = undefined;
  };
  const port = await startOnFreePort((free) => start(free, tls));
  return {
    port,
    rootUrl: `mysql://root@127.0.0.1:${port}/`,
    async restart(tls) {
      await stop();
      await start(port, tls);
    },
    stop,
  };
}
