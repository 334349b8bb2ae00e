import { isIP } from 'node:net';
import {
  MYSQL_SSL_MODE_PARAMETERS,
  MYSQL_SSL_MODES,
  MYSQL_URL_FILES,
  mysqlSslModeProblem,
  mysqlTlsParameterProblem,
} from '../config/load.ts';
import { explainNetworkError, explainRefusedCertificate } from '../db/errors.ts';

/**
 * TLS to Alliance Auth's MariaDB or MySQL, set in its URL with the names of the `mysql` client's own
 * options: `ssl-mode` (DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY), `ssl-ca` (the file of the
 * authority's certificate; without it, the system's authorities), and `ssl-cert` with `ssl-key` (a
 * client certificate, for a login created `REQUIRE X509`). TLS parameters without `ssl-mode` mean
 * VERIFY_IDENTITY: the stricter reading, since the operator who names an authority wants it checked.
 */
export { MYSQL_SSL_MODES };
export type MysqlSslMode = (typeof MYSQL_SSL_MODES)[number];

export interface MysqlTlsSettings {
  mode: MysqlSslMode;
  /** The file holding the authority's certificate (PEM), when `ssl-ca` names one. */
  caFile: string | undefined;
  /** The client certificate and its key (PEM files), when `ssl-cert` and `ssl-key` name them. */
  client: { certFile: string; keyFile: string } | undefined;
}

/** The URL without the TLS parameters (the driver would warn about options it does not know). */
export interface MysqlUrlParts {
  uri: string;
  tls: MysqlTlsSettings | undefined;
}

const CA_PARAMETERS = MYSQL_URL_FILES['ssl-ca'];
const CERT_PARAMETERS = MYSQL_URL_FILES['ssl-cert'];
const KEY_PARAMETERS = MYSQL_URL_FILES['ssl-key'];

/**
 * Reads `ssl-mode`, `ssl-ca`, `ssl-cert` and `ssl-key` from a `mysql://` URL. A value that cannot
 * work is refused with a message (without the setting's name, which the caller adds) naming the
 * parameter and what is valid.
 */
export function mysqlUrlParts(url: string): MysqlUrlParts {
  // An unknown ssl-mode, an ssl the driver does not read: refused at configuration load already.
  const sslProblem = mysqlTlsParameterProblem(url);
  if (sslProblem !== undefined) throw new Error(sslProblem);
  const parsed = new URL(url);
  const mode = takeParameter(parsed, MYSQL_SSL_MODE_PARAMETERS);
  const caFile = takeParameter(parsed, CA_PARAMETERS);
  const certFile = takeParameter(parsed, CERT_PARAMETERS);
  const keyFile = takeParameter(parsed, KEY_PARAMETERS);
  if ([mode, caFile, certFile, keyFile].every((value) => value === undefined))
    return { uri: url, tls: undefined };
  const chosen = mode === undefined ? 'VERIFY_IDENTITY' : mode.toUpperCase();
  if (!isSslMode(chosen)) throw new Error(mysqlSslModeProblem(mode ?? chosen));
  for (const [name, value] of [
    ['ssl-ca', caFile],
    ['ssl-cert', certFile],
    ['ssl-key', keyFile],
  ] as const) {
    if (value === '') throw new Error(`${name} is empty; give the path of a PEM file`);
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new Error(
      'a client certificate needs both ssl-cert (the certificate) and ssl-key (its private key)',
    );
  }
  if (certFile !== undefined && chosen === 'DISABLED') {
    throw new Error('ssl-cert and ssl-key need TLS, which ssl-mode=DISABLED turns off');
  }
  if (caFile !== undefined && (chosen === 'DISABLED' || chosen === 'REQUIRED')) {
    throw new Error(
      `ssl-ca is used only to check the server's certificate, which ssl-mode=${chosen} does not do; use ssl-mode=VERIFY_IDENTITY`,
    );
  }
  if (parsed.searchParams.has('ssl')) {
    if (chosen !== 'DISABLED') {
      throw new Error('give TLS either as ssl-mode and ssl-ca or as the driver’s ssl={…}, not both');
    }
    parsed.searchParams.delete('ssl');
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (chosen === 'VERIFY_IDENTITY' && isIP(host) !== 0) {
    // mysql2 hands the TLS layer no server name for an address, and Node then checks the certificate
    // against "localhost": an address could never be verified, however the certificate names it.
    throw new Error(
      `ssl-mode=VERIFY_IDENTITY needs the host name the server's certificate names, not the address ${host}; connect by that name, or use ssl-mode=VERIFY_CA (the certificate's authority checked, not its name)`,
    );
  }
  const client = certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
  return { uri: parsed.href, tls: { mode: chosen, caFile, client } };
}

/** The last value of the first of `names` present (removed from the URL), or undefined. */
function takeParameter(url: URL, names: readonly string[]): string | undefined {
  let value: string | undefined;
  for (const name of names) {
    const values = url.searchParams.getAll(name);
    if (values.length > 0) value ??= values.at(-1);
    url.searchParams.delete(name);
  }
  return value;
}

function isSslMode(value: string): value is MysqlSslMode {
  return (MYSQL_SSL_MODES as readonly string[]).includes(value);
}

/** The PEM texts of the files `MysqlTlsSettings` names. */
export interface MysqlTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** mysql2's `ssl` option for `settings` (none for DISABLED), with the files' contents. */
export function mysqlSslOption(
  settings: MysqlTlsSettings,
  files: MysqlTlsFiles,
): undefined | (MysqlTlsFiles & { rejectUnauthorized: boolean; verifyIdentity?: boolean }) {
  const client =
    files.cert !== undefined && files.key !== undefined ? { cert: files.cert, key: files.key } : {};
  switch (settings.mode) {
    case 'DISABLED':
      return undefined;
    case 'REQUIRED':
      return { ...client, rejectUnauthorized: false };
    case 'VERIFY_CA':
    case 'VERIFY_IDENTITY':
      return {
        ...(files.ca !== undefined && { ca: files.ca }),
        ...client,
        rejectUnauthorized: true,
        verifyIdentity: settings.mode === 'VERIFY_IDENTITY',
      };
  }
}

interface Details {
  code?: unknown;
  message?: unknown;
}

/**
 * The reason a connection to Alliance Auth's MariaDB failed, and what to fix, for
 * `cannot connect to …: REASON`. mysql2 reports every TLS failure as HANDSHAKE_SSL_ERROR with the
 * TLS layer's message, so the certificate's trouble is read from that message.
 */
export function explainMysqlConnectError(
  error: unknown,
  url: string,
  options: { setting: string; tls: MysqlTlsSettings | undefined },
): string {
  const { code, message } = (error ?? {}) as Details;
  const text = typeof message === 'string' ? message : String(error);
  const host = new URL(url).hostname;
  const network = explainNetworkError(code, host, options.setting, 'MariaDB');
  if (network !== undefined) return network;
  switch (code) {
    case 'ETIMEDOUT':
      return `no answer in time; check that the server runs and that the host and port are right`;
    case 'HANDSHAKE_NO_SSL_SUPPORT':
      return `the server does not accept TLS connections; enable TLS on the server (ssl_cert, ssl_key), or remove ssl-mode and ssl-ca from ${options.setting}`;
    case 'ER_ACCESS_DENIED_ERROR':
      return (
        `the server refused the user (${text}); check the user and password in ${options.setting} and the user's grants` +
        (options.tls === undefined || options.tls.mode === 'DISABLED'
          ? `. A server or user that requires TLS (require_secure_transport, REQUIRE SSL) refuses this way: add ssl-mode=VERIFY_IDENTITY&ssl-ca=/path/to/ca.pem`
          : options.tls.client === undefined
            ? '. A user created REQUIRE X509 refuses this way without a client certificate: add ssl-cert and ssl-key'
            : '')
      );
    case 'ER_BAD_DB_ERROR':
      return `${text}; fix the database's name in ${options.setting}`;
    case 'HANDSHAKE_SSL_ERROR':
      return explainCertificate(text, host, options.setting);
  }
  return text;
}

/** mysql2 reports a refused certificate with the TLS layer's message only (its code is replaced). */
function explainCertificate(text: string, host: string, setting: string): string {
  const refusal = /self[- ]signed|unable to (verify|get)|certificate chain|not trusted/i.test(text)
    ? 'untrusted'
    : /does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i.test(text)
      ? 'other-host'
      : /expired|not yet valid/i.test(text)
        ? 'out-of-date'
        : undefined;
  return refusal === undefined
    ? `the TLS handshake failed (${text})`
    : explainRefusedCertificate(refusal, text, host, `${setting} (ssl-ca=/path/to/ca.pem)`);
}
