import { type DatabaseTarget, unreadableUrlFile, usesLibpqSslModes } from '../config/load.ts';
import { parsePortNumber } from '../util/whole-number.ts';
import { BUSY_TIMEOUT_MS } from './sqlite-settings.ts';

/**
 * The database cannot be used now: it refused or timed out a connection, or its file cannot be
 * opened. The message names the database (host and port, or the file) and what to check, never a
 * password. `database` names another database than aa-oidc's own (Alliance Auth's), for the log line
 * of the 503 it makes; without it, the failure is aa-oidc's own database's.
 */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
  readonly database?: string;
  constructor(message: string, options?: ErrorOptions & { database?: string }) {
    super(message, options);
    if (options?.database !== undefined) this.database = options.database;
  }
}

/**
 * The database answered, but not as a request needs it to (a column it does not describe as it
 * must): no outage, yet nothing the person did wrong either. The request is answered 503 "try again"
 * as a fault (`noteDatabaseFault`), never a 500, and logged each time; `what` names what it stopped,
 * the message what to fix, `database` the database when it is not aa-oidc's own (as for
 * `DatabaseUnavailableError`). None names a password, code or token.
 */
export class DatabaseFaultError extends Error {
  override name = 'DatabaseFaultError';
  readonly what: string;
  readonly database?: string;
  constructor(message: string, what: string, options?: ErrorOptions & { database?: string }) {
    super(message, options);
    this.what = what;
    if (options?.database !== undefined) this.database = options.database;
  }
}

/**
 * True when `error` means a database could not serve the request: unreachable or down
 * (`isDatabaseUnavailable`), or answering without what the request needs (`DatabaseFaultError`).
 * Neither is the person's doing; both are answered 503 "try again" (http/unavailable.ts).
 */
export function isTryAgainError(error: unknown): boolean {
  return isDatabaseUnavailable(error) || error instanceof DatabaseFaultError;
}

/**
 * The database `error` says failed when it is not aa-oidc's own (`DatabaseUnavailableError` or
 * `DatabaseFaultError` with a `database`), looked for in it and its causes; undefined otherwise.
 */
export function failedDatabase(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    if (
      (current instanceof DatabaseUnavailableError || current instanceof DatabaseFaultError) &&
      current.database !== undefined
    )
      return current.database;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * How a message names the database: `PostgreSQL at HOST:PORT (database NAME)`, `PostgreSQL at the
 * Unix socket FOLDER/.s.PGSQL.PORT (database NAME)` or `the SQLite file PATH`: what the driver tries.
 */
export function describeDatabase(target: DatabaseTarget): string {
  if (target.kind === 'sqlite') return `the SQLite file ${target.path}`;
  const { host, port, database } = postgresAddress(target.url);
  const where = isSocketFolder(host)
    ? `the Unix socket ${socketPath(host, port)}`
    : `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return `PostgreSQL at ${where}${database ? ` (database ${database})` : ''}`;
}

/** A PostgreSQL host that is a folder holding the server's Unix socket, as libpq and node-postgres read it. */
function isSocketFolder(host: string): boolean {
  return host.startsWith('/');
}

/** The Unix socket node-postgres connects to for the socket folder `host`. */
function socketPath(host: string, port: number | string): string {
  return `${host.replace(/\/+$/, '')}/.s.PGSQL.${port}`;
}

/**
 * Host (a name, an address without brackets, or a socket folder), port, database and user of a
 * `postgres://` URL, read as node-postgres reads them (pg-connection-string, then PGHOST and PGPORT,
 * then localhost:5432). The files the URL names are not read. A port that is no whole number from 1
 * to 65535 (`54x2`, `0x10`; configuration load refuses one) is given as it is written, in quotes:
 * the driver would read `54x2` as 54 and `Number()` `0x10` as 16, neither the port the operator
 * wrote nor one to name.
 */
export function postgresAddress(url: string): {
  host: string;
  port: number | string;
  database: string;
  user: string;
} {
  const defaultHost = process.env.PGHOST || 'localhost';
  const defaultPort = process.env.PGPORT || '5432';
  // As pg-connection-string: spaces and stray %-signs encoded; a URL with a user and no host
  // (`postgres://aa@/db?host=/run/postgresql`) read with a placeholder host.
  const text = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(url)
    ? encodeURI(url).replace(/%25(\d\d)/g, '%$1')
    : url;
  let parsed: URL | undefined;
  let noHost = false;
  try {
    parsed = new URL(text);
  } catch {
    try {
      parsed = new URL(text.replace('@/', '@___DUMMY___/'));
      noHost = true;
    } catch {
      return { host: defaultHost, port: shownPort(defaultPort), database: '', user: '' };
    }
  }
  const hostname = noHost ? '' : decodeURIComponent(parsed.hostname.replace(/^\[(.+)\]$/, '$1'));
  // The driver takes a parameter's last value (`?host=a&host=b` is b), and the URL's own host, port
  // or user when that value is empty.
  const last = (name: string) => parsed.searchParams.getAll(name).at(-1);
  return {
    host: last('host') || hostname || defaultHost,
    port: shownPort(last('port') || parsed.port || defaultPort),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')),
    user: last('user') || decodeURIComponent(parsed.username),
  };
}

/** A port as `postgresAddress` gives it: the number, or the text as written when it is none. */
function shownPort(text: string): number | string {
  return parsePortNumber(text) ?? JSON.stringify(text);
}

interface Details {
  code?: unknown;
  message?: unknown;
  syscall?: unknown;
  cause?: unknown;
}

/**
 * The reason a PostgreSQL connection failed, and what to fix, for `cannot connect to …: REASON`.
 * `setting` names where the URL came from (`AA_OIDC_DATABASE_URL`, or a config file key).
 */
export function explainPostgresConnectError(
  error: unknown,
  url: string,
  options: { setting: string; timeoutMs: number; timeoutSetting: string },
): string {
  const { host, port, database, user } = postgresAddress(url);
  const { code, message, syscall } = (error ?? {}) as Details;
  const text = typeof message === 'string' ? message : String(error);
  // The driver reads the files the URL names (sslrootcert…) for each connection it opens.
  const unreadable = unreadableUrlFile(error, url);
  if (unreadable !== undefined) return unreadable;
  if (isSocketFolder(host) && syscall === 'connect') {
    switch (code) {
      case 'ENOENT':
        return `no such socket; is PostgreSQL running, and is ${host} one of its unix_socket_directories (and ${port} its port)? Otherwise fix the host in ${options.setting}`;
      case 'EACCES':
      case 'EPERM':
        return 'permission denied on the socket; let the user aa-oidc runs as use it (its folder and unix_socket_permissions)';
    }
  }
  const network = explainNetworkError(code, host, options.setting, 'PostgreSQL');
  if (network !== undefined) return network;
  switch (code) {
    case '28P01':
    case '28000':
      return `the server refused user "${user}" (${text}); check the user and password in ${options.setting} and pg_hba.conf`;
    case '3D000':
      return `database "${database}" does not exist; create it (createdb -O ${user || 'USER'} ${database}) or fix ${options.setting}`;
    case '53300':
      return 'the server has no free connection slot (too many connections)';
    case '57P03':
      return 'the server is starting up or shutting down; try again shortly';
  }
  const refusal =
    typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code)
      ? 'untrusted'
      : code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? 'other-host'
        : code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID'
          ? 'out-of-date'
          : undefined;
  if (refusal !== undefined) {
    return explainRefusedCertificate(
      refusal,
      text,
      host,
      `${options.setting} (sslmode=verify-full&sslrootcert=/path/to/ca.pem). ${whichModesCheck(url)}`,
    );
  }
  if (/server does not support SSL/i.test(text)) {
    return `the server does not accept TLS connections; enable ssl on the server, or remove sslmode from ${options.setting}`;
  }
  if (/timeout|timed out/i.test(text)) {
    return `no answer within ${formatSeconds(options.timeoutMs)}; check that the server runs and that the host and port are right (the limit is ${options.timeoutSetting})`;
  }
  return text;
}

/**
 * Which `sslmode` values have node-postgres check the server's certificate, as it reads `url`: for
 * a certificate refused under a mode an operator may not expect to check it.
 */
function whichModesCheck(url: string): string {
  return usesLibpqSslModes(url)
    ? 'With uselibpqcompat=true, node-postgres checks the authority that issued the certificate for ' +
        'sslmode=verify-ca, and for sslmode=require with sslrootcert (verify-full checks the host name too)'
    : 'node-postgres checks the certificate for sslmode=require as for verify-full';
}

/**
 * What a socket error code says when connecting to the database server `server` at `host` (the
 * setting named by `setting` holds its URL); undefined for a code that is not one of those.
 */
export function explainNetworkError(
  code: unknown,
  host: string,
  setting: string,
  server: 'PostgreSQL' | 'MariaDB',
): string | undefined {
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused; is ${server} running and listening on that address?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name ${host} does not resolve; fix the host in ${setting}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'the host is unreachable from here (routing or firewall)';
  }
  return undefined;
}

/**
 * What to do about a server certificate refused while connecting to `host`: `text` is the TLS
 * layer's reason, `whereToTrust` where the authority's certificate is given (the setting and its
 * parameter).
 */
export function explainRefusedCertificate(
  refusal: 'untrusted' | 'other-host' | 'out-of-date',
  text: string,
  host: string,
  whereToTrust: string,
): string {
  switch (refusal) {
    case 'untrusted':
      return `the server's TLS certificate is not trusted (${text}); give the certificate of its authority in ${whereToTrust}`;
    case 'other-host':
      return `the server's TLS certificate is not issued for ${host} (${text}); connect with a host name the certificate names`;
    case 'out-of-date':
      return `the server's TLS certificate is not valid now (${text}); renew it on the server`;
  }
}

/** Node's codes for a TLS certificate whose chain does not lead to a trusted authority. */
const UNTRUSTED_CERTIFICATE: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

/** Who may hold an SQLite file's write lock when SQLite gave up waiting for it (SQLITE_BUSY). */
const SQLITE_LOCK_HOLDERS =
  'aa-oidc serve, worker or migrate on this file, a backup, an sqlite3 shell inside a transaction';
const SQLITE_LOCK_WAIT = `another process held its write lock longer than ${formatSeconds(BUSY_TIMEOUT_MS)}`;

/** What an SQLite failure to open means for the operator, for `cannot open …: REASON`. */
export function explainSqliteOpenError(error: unknown): string {
  const { code, message } = (error ?? {}) as Details;
  const text = typeof message === 'string' ? message : String(error);
  switch (code) {
    case 'SQLITE_CANTOPEN':
    case 'EACCES':
    case 'EPERM':
      return `${text}; check that its folder exists and that this user may write there (SQLite also writes -wal and -shm files beside it)`;
    case 'SQLITE_NOTADB':
      return `${text}; the file is not an SQLite database`;
    case 'SQLITE_CORRUPT':
      return `${text}; restore it from a backup (aa-oidc backup)`;
    case 'SQLITE_FULL':
      return `${text}; free some disk space`;
    case 'SQLITE_BUSY':
      return `${text}: ${SQLITE_LOCK_WAIT} (another ${SQLITE_LOCK_HOLDERS}); let it finish or stop it, then start again`;
  }
  if (typeof code === 'string' && code.startsWith('SQLITE_READONLY')) {
    return `${text}; this user needs write access to the file and to its folder`;
  }
  return text;
}

/**
 * A statement that waited too long for another session's lock, as one line naming the database
 * (`describeDatabase`) and what to look for; undefined for any other failure. SQLite gives up after
 * its busy timeout (SQLITE_BUSY); PostgreSQL's wait ends at the client's query time limit
 * (`queryTimeoutMs`), the usual cause of a statement that long.
 */
export function lockWaitFailure(
  database: string,
  error: unknown,
  queryTimeoutMs: number,
): DatabaseUnavailableError | undefined {
  const { code, message } = (error ?? {}) as Details;
  if (code === 'SQLITE_BUSY') {
    return new DatabaseUnavailableError(
      `cannot write ${database}: ${SQLITE_LOCK_WAIT} (${SQLITE_LOCK_HOLDERS}); let it finish, then run the command again`,
      { cause: error },
    );
  }
  if (message === 'Query read timeout') {
    return new DatabaseUnavailableError(
      `${database} did not answer within ${formatSeconds(queryTimeoutMs)}: another session probably holds a lock ` +
        'this command needs (a long transaction, a migration, an open psql session: pg_stat_activity shows it), ' +
        'or the connection went silent; let it finish, then run the command again',
      { cause: error },
    );
  }
  return undefined;
}

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
]);

/**
 * Node's codes for a server certificate refused while connecting (not trusted, not issued for the
 * host, out of date): the database cannot be reached as configured, like a refused connection.
 */
const TLS_REFUSED_CODES: ReadonlySet<string> = new Set([
  ...UNTRUSTED_CERTIFICATE,
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/**
 * SQLSTATE classes and codes of a server that cannot take the query now (not of a bad query); 25006,
 * a write refused as read-only, comes from a standby (a URL that reached a replica, or a failover in
 * progress): aa-oidc never opens a read-only transaction itself.
 */
const POSTGRES_UNAVAILABLE = /^(08...|57P01|57P02|57P03|53...|25006)$/;

/** node-postgres's own messages for a connection that failed, timed out, died or found no TLS. */
const POSTGRES_CONNECTION_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|timeout expired|Query read timeout|is not queryable|server does not support SSL/;

/** SQLite result codes of a database that cannot be used now (busy, disk, file access). */
export const SQLITE_UNAVAILABLE =
  /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|CORRUPT|NOTADB|PROTOCOL)(_|$)/;

/**
 * True when `error` (or one of its causes) says the database cannot be reached or used right now,
 * as opposed to a bug or a bad request: such a request is answered 503 "try again", not 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    if (current instanceof DatabaseUnavailableError) return true;
    const { code, message, syscall, cause } = current as Details;
    if (typeof code === 'string') {
      if (
        CONNECTION_ERROR_CODES.has(code) ||
        // A Unix socket that is not there: the server is stopped (it removes its socket).
        (code === 'ENOENT' && syscall === 'connect') ||
        TLS_REFUSED_CODES.has(code) ||
        POSTGRES_UNAVAILABLE.test(code) ||
        SQLITE_UNAVAILABLE.test(code)
      )
        return true;
    }
    if (typeof message === 'string' && POSTGRES_CONNECTION_MESSAGES.test(message)) return true;
    current = cause;
  }
  return false;
}

/**
 * True for a unique-constraint violation on either database (a primary key or a unique index refused
 * a row): a write that lost a race for a name or an id to another one.
 */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
