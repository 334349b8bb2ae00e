import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parse as parsePostgresUrl } from 'pg-connection-string';
import type * as yaml from 'yaml';
import type { z } from 'zod';
import { readFileAtMost } from '../util/bounded-read.ts';
import { createPrivateFileOnce, ensurePrivateDirectory } from '../util/private-files.ts';
import { scrubString } from '../util/scrub-text.ts';
import { whyUnreadable } from '../util/unreadable-file.ts';
import { parsePortNumber } from '../util/whole-number.ts';
import {
  configSchema,
  DEFAULT_EVE_CLAIMS_SCOPE,
  ENV_ALIASES,
  ENV_NOT_CONFIG,
  ENV_NOT_CONFIG_PREFIXES,
  type ParsedConfig,
} from './schema.ts';

export type Mode = 'development' | 'production';

export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

export interface Config extends Omit<ParsedConfig, 'mode' | 'host' | 'issuer' | 'secretKey' | 'databaseUrl'> {
  mode: Mode;
  host: string;
  /** The issuer, without trailing slash. */
  issuer: string;
  /** False when the issuer was derived from host and port (development default). */
  issuerExplicit: boolean;
  secretKey: string;
  database: DatabaseTarget;
  /** Where each value came from, for messages: `env:AA_OIDC_PORT`, `file:…`, or absent for defaults. */
  origins: Readonly<Record<string, string>>;
  /**
   * The config file, when it holds secrets (the keys named) and users other than its owner and
   * group may read it (check W010); otherwise null.
   */
  readableConfigFile: { path: string; mode: number; secrets: readonly string[] } | null;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Overrides applied last (tests, CLI flags); same shape as the config file. */
  overrides?: Record<string, unknown>;
  /** In development, create `dataDir/secret.key` when no secret key is configured (default true). */
  createDevSecretKey?: boolean;
}

const ENV_PREFIX = 'AA_OIDC_';

/** Every leaf path of the schema, e.g. `['tokens', 'jwtSizeWarnBytes']`. */
export function configLeafPaths(): string[][] {
  const paths: string[][] = [];
  const walk = (schema: z.ZodType, prefix: string[]): void => {
    const objectShape = shapeOf(schema);
    if (!objectShape) {
      paths.push(prefix);
      return;
    }
    for (const [key, child] of Object.entries(objectShape)) walk(child, [...prefix, key]);
  };
  walk(configSchema, []);
  return paths;
}

function shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let current = schema as unknown as {
    _zod: { def: { type: string; innerType?: unknown; shape?: unknown } };
  };
  while (['default', 'optional', 'prefault', 'nullable'].includes(current._zod.def.type)) {
    current = current._zod.def.innerType as typeof current;
  }
  if (current._zod.def.type !== 'object') return undefined;
  return (current as unknown as { shape: Record<string, z.ZodType> }).shape;
}

export function envNameFor(leafPath: readonly string[]): string {
  return (
    ENV_PREFIX + leafPath.map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
  );
}

function envNameTable(): Map<string, string[]> {
  const table = new Map<string, string[]>();
  for (const leaf of configLeafPaths()) table.set(envNameFor(leaf), leaf);
  for (const [name, leaf] of Object.entries(ENV_ALIASES)) table.set(name, [...leaf]);
  return table;
}

function setPath(target: Record<string, unknown>, leafPath: readonly string[], value: unknown): void {
  let node = target;
  for (const key of leafPath.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[leafPath[leafPath.length - 1]!] = value;
}

function deepMerge(base: Record<string, unknown>, top: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(top)) {
    const existing = merged[key];
    if (isPlainObject(existing) && isPlainObject(value)) merged[key] = deepMerge(existing, value);
    else merged[key] = value;
  }
  return merged;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The largest config file read: one that sets every key is a few kilobytes. */
const CONFIG_FILE_LIMIT = 1024 * 1024;

function readConfigFile(file: string): { settings: Record<string, unknown>; mode: number } {
  let bytes: Buffer | undefined;
  let mode: number;
  try {
    bytes = readFileAtMost(file, CONFIG_FILE_LIMIT);
    mode = statSync(file).mode & 0o777;
  } catch (error) {
    const why = whyUnreadable(error, {
      file: 'a YAML or JSON file',
      orElse: 'unset AA_OIDC_CONFIG',
      access: 'like mode 0640, owner root, group aa-oidc',
    });
    throw new ConfigError(`AA_OIDC_CONFIG: cannot read ${file}: ${why}`);
  }
  if (bytes === undefined) {
    throw new ConfigError(
      `AA_OIDC_CONFIG: ${file} is larger than ${CONFIG_FILE_LIMIT / 1024 / 1024} MiB; name the YAML or JSON file, which is a few kilobytes`,
    );
  }
  const text = bytes.toString('utf8');
  let parsed: unknown;
  try {
    parsed = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`AA_OIDC_CONFIG: ${file} ${error.message}`);
    // The parser's first line (what and where), never the text it quotes: the line may hold the
    // secret key or another secret (YAML's excerpt of the line, JSON's of the text).
    const json = /\.json$/i.test(file);
    const message = (error as Error).message;
    const firstLine = (message.split('\n')[0] ?? '').replace(/:$/, '');
    // The position once: Node.js's message may already end with it. An unexpected token's message
    // has none, only an excerpt (`Unexpected token 'h', "{"secretKey": h"... is not valid JSON`),
    // which is cut off: then the position is found.
    const position =
      /at position \d+(?: \(line \d+ column \d+\))?/.exec(message)?.[0] ??
      (json ? jsonErrorPosition(text) : undefined);
    const reason = json
      ? `${firstLine
          .split('"')[0]!
          .replace(/ token '.*?'/, ' token')
          .replace(/ at position \d+.*$/, '')
          .replace(/[,.\s]+$/, '')}${position ? ` ${position}` : ''}`
      : withoutQuotedYaml(firstLine);
    throw new ConfigError(`AA_OIDC_CONFIG: ${file} is not valid ${json ? 'JSON' : 'YAML'}: ${reason}`);
  }
  // JSON.parse keeps the last of a key given twice, where YAML refuses it: the first would be lost
  // without a word (a secret key set twice, an edit appended below the old value).
  const twice = /\.json$/i.test(file) ? repeatedJsonKey(text) : undefined;
  if (twice !== undefined)
    throw new ConfigError(
      `AA_OIDC_CONFIG: ${file} gives a key twice in one object, at ${twice}; give each key once (JSON would keep only the last)`,
    );
  if (parsed == null) return { settings: {}, mode };
  if (!isPlainObject(parsed))
    throw new ConfigError(`AA_OIDC_CONFIG: ${file} must contain an object at the top level`);
  return { settings: parsed, mode };
}

/**
 * The keys of a config file that hold a secret: the secret keys, and the URLs that carry a password
 * (as the user's, or a query parameter).
 */
function secretsIn(settings: Record<string, unknown>): string[] {
  const found: string[] = [];
  for (const key of [...SECRET_KEYS, ...URL_KEYS]) {
    let node: unknown = settings;
    for (const part of key.split('.')) node = isPlainObject(node) ? node[part] : undefined;
    if (node === undefined) continue;
    if (SECRET_KEYS.has(key) || (typeof node === 'string' && redactUrl(node) !== node)) found.push(key);
  }
  return found;
}

function collectPaths(value: unknown, prefix: string[], out: string[][]): void {
  if (isPlainObject(value)) {
    for (const [key, child] of Object.entries(value)) collectPaths(child, [...prefix, key], out);
  } else {
    out.push(prefix);
  }
}

function describeValidKeys(parentPath: readonly PropertyKey[]): string {
  const prefix = parentPath.map(String);
  const keys = new Set<string>();
  for (const leaf of configLeafPaths()) {
    if (prefix.every((part, index) => leaf[index] === part) && leaf.length > prefix.length) {
      keys.add(leaf[prefix.length]!);
    }
  }
  return [...keys].sort().join(', ');
}

/**
 * Loads configuration from (lowest to highest precedence) defaults, the optional config file named by
 * `AA_OIDC_CONFIG`, the environment, and `overrides`. Throws `ConfigError` naming the offending key.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  // No prototype: a file's key `__proto__` would otherwise find Object.prototype as its origin.
  const origins: Record<string, string> = Object.create(null) as Record<string, string>;

  let raw: Record<string, unknown> = {};
  let readableConfigFile: Config['readableConfigFile'] = null;
  const configFile = env.AA_OIDC_CONFIG;
  // Set but empty (a variable that a unit or a script expanded to nothing): refused rather than
  // read as unset, which would start with a configuration other than the one meant.
  if (configFile !== undefined && configFile.trim() === '') {
    throw new ConfigError(
      'AA_OIDC_CONFIG: set but empty; name the config file (a YAML or JSON file, like /etc/aa-oidc/config.yaml; a relative path starts from the working directory), or unset AA_OIDC_CONFIG to use none',
    );
  }
  if (configFile !== undefined) {
    const resolved = path.resolve(cwd, configFile);
    const { settings: fromFile, mode } = readConfigFile(resolved);
    const secrets = secretsIn(fromFile);
    if ((mode & 0o004) !== 0 && secrets.length > 0) readableConfigFile = { path: resolved, mode, secrets };
    const filePaths: string[][] = [];
    collectPaths(fromFile, [], filePaths);
    for (const leaf of filePaths) origins[leaf.join('.')] = `config file ${resolved}`;
    raw = fromFile;
  }

  const table = envNameTable();
  const fromEnv: Record<string, unknown> = {};
  const unknownEnv: string[] = [];
  // A key with two names (the spec's `AA_OIDC_LOG_LEVEL` and the mechanical `AA_OIDC_LOGGING_LEVEL`):
  // given two different values, which one won would depend on the order of the environment.
  const setBy = new Map<string, string>();
  const conflicts: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    if (ENV_NOT_CONFIG.has(name) || ENV_NOT_CONFIG_PREFIXES.some((prefix) => name.startsWith(prefix)))
      continue;
    const leaf = table.get(name);
    if (!leaf) {
      unknownEnv.push(name);
      continue;
    }
    const key = leaf.join('.');
    const earlier = setBy.get(key);
    // Never the values: the Alliance Auth database URL is one such key.
    if (earlier !== undefined && env[earlier] !== value)
      conflicts.push(
        `${[earlier, name].sort().join(' and ')} both set "${key}", to different values; set only one of them`,
      );
    setBy.set(key, name);
    setPath(fromEnv, leaf, value);
    origins[key] = name;
  }
  if (unknownEnv.length > 0) {
    throw new ConfigError(
      `unknown environment variable ${unknownEnv.sort().join(', ')}; valid names: ${[...table.keys()].sort().join(', ')}, AA_OIDC_CONFIG`,
    );
  }
  if (conflicts.length > 0) throw new ConfigError(conflicts.join('; '));
  raw = deepMerge(raw, fromEnv);
  if (options.overrides) {
    const overridePaths: string[][] = [];
    collectPaths(options.overrides, [], overridePaths);
    for (const leaf of overridePaths) origins[leaf.join('.')] = 'override';
    raw = deepMerge(raw, options.overrides);
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const messages = result.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys
          .map((key) => {
            const full = [...issue.path, key].join('.');
            // A key holding an object has no origin of its own: its leaves have.
            const origin =
              origins[full] ??
              Object.entries(origins).find(([leaf]) => leaf.startsWith(`${full}.`))?.[1] ??
              'config';
            return `${origin}: unknown key "${full}"; valid keys${issue.path.length ? ` under "${issue.path.join('.')}"` : ''}: ${describeValidKeys(issue.path)}`;
          })
          .join('; ');
      }
      const key = issue.path.join('.');
      // An item of a list (`trustedProxies.1`) came from where its list came from.
      const origin = issue.path
        .map((_, index) => origins[issue.path.slice(0, issue.path.length - index).join('.')])
        .find((found) => found !== undefined);
      const source = origin ?? 'config';
      const name = source.startsWith(ENV_PREFIX) ? source : `${source} key "${key}"`;
      return `${name}: ${issue.message}${describeReceived(raw, issue.path)}`;
    });
    throw new ConfigError(messages.join('; '));
  }
  return {
    ...resolveConfig(result.data, env, cwd, origins, options.createDevSecretKey ?? true),
    readableConfigFile,
  };
}

/** Keys whose value is a secret: a message names the key and what is wrong, never the value. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['secretKey', 'metrics.bearerToken', 'eveSso.clientSecret']);
/** Keys whose value is a URL that may carry a password: shown with the password hidden. */
const URL_KEYS: ReadonlySet<string> = new Set([
  'databaseUrl',
  'directory.allianceAuth.databaseUrl',
  'issuer',
]);

function describeReceived(raw: Record<string, unknown>, issuePath: readonly PropertyKey[]): string {
  const key = issuePath.map(String).join('.');
  if (SECRET_KEYS.has(key)) return '';
  let node: unknown = raw;
  for (const key of issuePath) {
    if (!isPlainObject(node)) return '';
    node = node[String(key)];
  }
  if (node === undefined) return '';
  if (URL_KEYS.has(key)) return typeof node === 'string' ? ` (got "${redactUrl(node)}")` : '';
  // Any other URL (a logo's, EVE SSO's) given with a password: shown with it hidden.
  if (typeof node === 'string') return ` (got ${JSON.stringify(redactUrl(node))})`;
  // YAML's .inf, .nan and 1e309 are numbers JSON has no text for (JSON.stringify writes null).
  return ` (got ${typeof node === 'number' && !Number.isFinite(node) ? String(node) : JSON.stringify(node)})`;
}

function resolveConfig(
  parsed: ParsedConfig,
  env: NodeJS.ProcessEnv,
  cwd: string,
  origins: Record<string, string>,
  createDevSecretKey: boolean,
): Omit<Config, 'readableConfigFile'> {
  const mode: Mode = parsed.mode ?? (env.NODE_ENV === 'production' ? 'production' : 'development');
  const host = parsed.host ?? (mode === 'production' ? '0.0.0.0' : '127.0.0.1');
  const dataDir = path.resolve(cwd, parsed.dataDir);
  checkDataDir(dataDir, settingName(origins, 'dataDir'));

  let issuer = parsed.issuer;
  if (issuer === undefined) {
    if (mode === 'production') {
      throw new ConfigError(
        'AA_OIDC_ISSUER: required in production mode (for example https://auth.example.org/o)',
      );
    }
    issuer = `http://localhost:${parsed.port}/o`;
  }
  issuer = issuer.replace(/\/+$/, '');
  if (mode === 'production' && !issuer.startsWith('https://')) {
    throw new ConfigError(
      `${settingName(origins, 'issuer')}: production mode requires an https:// issuer (got "${redactUrl(issuer)}")`,
    );
  }

  if (mode === 'production' && parsed.branding.logoUrl?.startsWith('http://')) {
    throw new ConfigError(
      `${settingName(origins, 'branding.logoUrl')}: production mode requires an https:// logo (got "${redactUrl(parsed.branding.logoUrl)}")`,
    );
  }

  let secretKey = parsed.secretKey;
  if (secretKey === undefined) {
    if (mode === 'production') {
      throw new ConfigError(
        'AA_OIDC_SECRET_KEY: required in production mode (at least 32 random characters)',
      );
    }
    secretKey = developmentSecretKey(dataDir, createDevSecretKey);
  }

  const allianceAuthUrl = checkDirectory(parsed, mode, origins);
  checkEveClaimsScope(parsed, origins);

  const { mode: _mode, host: _host, issuer: _issuer, secretKey: _secret, databaseUrl, ...rest } = parsed;
  const databaseSetting = settingName(origins, 'databaseUrl');
  const database = parseDatabaseUrl(databaseUrl, cwd, databaseSetting);
  if (database.kind === 'postgres') refuseUnreadablePostgresPort(database.url, databaseSetting, env);
  if (allianceAuthUrl !== undefined && /^postgres/i.test(allianceAuthUrl))
    refuseUnreadablePostgresPort(
      allianceAuthUrl,
      settingName(origins, 'directory.allianceAuth.databaseUrl', 'AA_OIDC_AA_DATABASE_URL'),
      env,
    );
  return {
    ...rest,
    directory:
      allianceAuthUrl === undefined
        ? rest.directory
        : {
            ...rest.directory,
            allianceAuth: { ...rest.directory.allianceAuth, databaseUrl: allianceAuthUrl },
          },
    dataDir,
    mode,
    host,
    issuer,
    issuerExplicit: parsed.issuer !== undefined,
    secretKey,
    database,
    origins,
  };
}

/**
 * The port node-postgres connects to for `url` (`setting` names where the URL came from), refused
 * unless it is a whole number from 1 to 65535: the URL's `port` parameter, else the port after its
 * host, else the environment's PGPORT. The driver reads it with `parseInt`, so that `PGPORT=54x2`
 * would connect to port 54 and `0x10` to port 0, and an error would name neither.
 */
function refuseUnreadablePostgresPort(url: string, setting: string, env: NodeJS.ProcessEnv): void {
  let written: string | null | undefined;
  try {
    written = parsePostgresUrl(url).port;
  } catch {
    return; // postgresDriverReads has refused a URL the driver cannot read.
  }
  if (written) {
    if (parsePortNumber(written) === undefined)
      throw new ConfigError(
        `${setting}: port ${JSON.stringify(redactUrl(written))} is not a port; use a whole number from 1 to 65535 (postgres://USER:PASSWORD@HOST:5432/DB)`,
      );
    return;
  }
  const fromEnv = env.PGPORT;
  if (fromEnv && parsePortNumber(fromEnv) === undefined)
    throw new ConfigError(
      `PGPORT: ${JSON.stringify(fromEnv)} is not a port, and the PostgreSQL driver connects to it because ${setting} names no port; set PGPORT to a whole number from 1 to 65535, unset it (5432), or name the port in ${setting} (postgres://USER:PASSWORD@HOST:5432/DB)`,
    );
}

/**
 * How a message names a setting: its environment variable, or its key in the config file that set it
 * (`config file /etc/aa-oidc/config.yaml key "port"`).
 */
export function settingName(
  origins: Readonly<Record<string, string>>,
  key: string,
  env: string = envNameFor(key.split('.')),
): string {
  const origin = origins[key];
  return origin === undefined || origin.startsWith(ENV_PREFIX) ? env : `${origin} key "${key}"`;
}

/**
 * What the Alliance Auth directory and EVE SSO need together: AA's database and login page, EVE SSO
 * only with Alliance Auth (it signs in AA's character owners), https endpoints in production.
 * Returns AA's database URL as both its drivers read it as written (`urlAsWritten`), when the
 * directory is Alliance Auth.
 */
function checkDirectory(
  parsed: ParsedConfig,
  mode: Mode,
  origins: Record<string, string>,
): string | undefined {
  const aa = parsed.directory.allianceAuth;
  const eve = parsed.eveSso;
  let databaseUrl: string | undefined;
  if (parsed.directory.source === 'alliance-auth') {
    const urlName = settingName(origins, 'directory.allianceAuth.databaseUrl', 'AA_OIDC_AA_DATABASE_URL');
    if (aa.databaseUrl === undefined) {
      throw new ConfigError(
        `${urlName}: required when AA_OIDC_DIRECTORY=alliance-auth (Alliance Auth's database with a SELECT-only login: mysql://USER:PASSWORD@HOST:3306/alliance_auth or postgres://USER:PASSWORD@HOST:5432/alliance_auth)`,
      );
    }
    databaseUrl = urlAsWritten(aa.databaseUrl, urlName);
    if (!/^(mysql|mariadb|postgres|postgresql):\/\//i.test(databaseUrl)) {
      throw new ConfigError(
        `${urlName}: "${redactUrl(databaseUrl)}" is not supported; use mysql://USER:PASSWORD@HOST:3306/alliance_auth or postgres://USER:PASSWORD@HOST:5432/alliance_auth`,
      );
    }
    // As each driver reads it (mysql2 a WHATWG URL), rather than "Invalid URL" at the first poll.
    const readable = /^postgres/i.test(databaseUrl)
      ? postgresDriverReads(databaseUrl, urlName)
      : URL.canParse(databaseUrl) && !atAfterHost(databaseUrl);
    if (!readable) {
      throw new ConfigError(
        `${urlName}: "${redactUrl(databaseUrl)}" is not a valid URL; use mysql://USER:PASSWORD@HOST:3306/alliance_auth or postgres://USER:PASSWORD@HOST:5432/alliance_auth (${URL_PARTS_HINT})`,
      );
    }
    if (!/^postgres/i.test(databaseUrl)) {
      const sslProblem = mysqlTlsParameterProblem(databaseUrl);
      if (sslProblem !== undefined) throw new ConfigError(`${urlName}: ${sslProblem}`);
      mysqlUrlFilesReadable(databaseUrl, urlName);
    }
    if (aa.loginUrl === undefined) {
      throw new ConfigError(
        `${settingName(origins, 'directory.allianceAuth.loginUrl', 'AA_OIDC_AA_LOGIN_URL')}: required when AA_OIDC_DIRECTORY=alliance-auth (Alliance Auth's sign-in page, where people register and pick a main character, e.g. https://auth.example.org/)`,
      );
    }
    // People are sent there to sign in to Alliance Auth: not over plain http, as the logo is not.
    if (mode === 'production' && aa.loginUrl.startsWith('http://')) {
      throw new ConfigError(
        `${settingName(origins, 'directory.allianceAuth.loginUrl', 'AA_OIDC_AA_LOGIN_URL')}: production mode requires an https:// Alliance Auth sign-in page (got "${redactUrl(aa.loginUrl)}")`,
      );
    }
  }
  const eveSet = [eve.clientId, eve.clientSecret].filter((value) => value !== undefined).length;
  if (eveSet === 1) {
    throw new ConfigError(
      `${eve.clientId === undefined ? settingName(origins, 'eveSso.clientId', 'AA_OIDC_EVE_SSO_CLIENT_ID') : settingName(origins, 'eveSso.clientSecret', 'AA_OIDC_EVE_SSO_CLIENT_SECRET')}: EVE SSO needs both the client id and the client secret of the application registered at CCP`,
    );
  }
  if (eveSet === 2 && parsed.directory.source !== 'alliance-auth') {
    throw new ConfigError(
      `${settingName(origins, 'eveSso.clientId', 'AA_OIDC_EVE_SSO_CLIENT_ID')}: sign-in with EVE SSO needs the Alliance Auth directory (AA_OIDC_DIRECTORY=alliance-auth), which knows the characters' owners`,
    );
  }
  // CCP's endpoints are public: a private one is a development stand-in, never a production setup.
  if (mode === 'production' && eve.allowPrivateEndpoints) {
    throw new ConfigError(
      `${settingName(origins, 'eveSso.allowPrivateEndpoints', 'AA_OIDC_EVE_SSO_ALLOW_PRIVATE_ENDPOINTS')}: development only (a local stand-in for EVE SSO); production reaches CCP's public endpoints, so unset it`,
    );
  }
  if (mode === 'production') {
    for (const [key, env] of [
      ['authorizationUrl', 'AA_OIDC_EVE_SSO_AUTHORIZATION_URL'],
      ['tokenUrl', 'AA_OIDC_EVE_SSO_TOKEN_URL'],
      ['jwksUrl', 'AA_OIDC_EVE_SSO_JWKS_URL'],
    ] as const) {
      if (!eve[key].startsWith('https://')) {
        throw new ConfigError(
          `${settingName(origins, `eveSso.${key}`, env)}: production mode requires https (got "${redactUrl(eve[key])}")`,
        );
      }
    }
  }
  return databaseUrl;
}

/** The data directory is created when missing; a file in its place is refused, naming the setting. */
function checkDataDir(dataDir: string, name: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dataDir).isDirectory();
  } catch (error) {
    // Missing: created when first needed. ENOTDIR: a file where one of its parent folders should be.
    if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR') return;
    isDirectory = false;
  }
  if (!isDirectory) {
    throw new ConfigError(
      `${name}: ${dataDir} is not a directory; name a directory (it is created when missing), like ./data or /var/lib/aa-oidc`,
    );
  }
}

/**
 * A configured EVE claims scope must be a supported one: the provider never grants any other, so the
 * EVE claims would silently never be released (a typo). The default, `profile`, given or not, may be
 * left out of the scopes on purpose: then no EVE claims are released.
 */
function checkEveClaimsScope(parsed: ParsedConfig, origins: Record<string, string>): void {
  const { scopes, eveClaimsScope } = parsed.oidc;
  if (origins['oidc.eveClaimsScope'] === undefined || eveClaimsScope === DEFAULT_EVE_CLAIMS_SCOPE) return;
  if (scopes.includes(eveClaimsScope)) return;
  throw new ConfigError(
    `${settingName(origins, 'oidc.eveClaimsScope')}: ${JSON.stringify(eveClaimsScope)} is not a supported scope; name one of oidc.scopes (${scopes.join(', ') || 'none configured'}) or add it to them (AA_OIDC_OIDC_SCOPES)`,
  );
}

/**
 * The development secret key kept in `dataDir/secret.key`, created there when missing (if `create`).
 * A file that cannot be read or created (a directory in its place, no permission, a read-only
 * folder) is a `ConfigError` naming it, so that `aa-oidc check` reports it (E011) as the other
 * problems of the configuration.
 */
function developmentSecretKey(dataDir: string, create: boolean): string {
  const file = path.join(dataDir, 'secret.key');
  const fix = 'or set AA_OIDC_SECRET_KEY (at least 32 random characters)';
  if (existsSync(file)) {
    let key: string;
    try {
      key = readFileSync(file, 'utf8').trim();
    } catch (error) {
      const reason =
        (error as NodeJS.ErrnoException).code === 'EISDIR'
          ? 'it is a directory; remove it to have a new key generated'
          : whyUnreadable(error, {
              file: 'the file holding the key',
              access: 'mode 600, owned by that user',
            });
      throw new ConfigError(`${file}: cannot read the development secret key file: ${reason}, ${fix}`);
    }
    if (key === '') {
      throw new ConfigError(
        `${file}: the development secret key file is empty (or only spaces); delete it to have a new key generated, ${fix}`,
      );
    }
    return key;
  }
  const generated = randomBytes(32).toString('base64url');
  if (!create) return generated;
  try {
    ensurePrivateDirectory(dataDir);
    // Another process starting at the same moment may create it first: then its key is the one.
    return createPrivateFileOnce(file, `${generated}\n`).trim();
  } catch (error) {
    throw new ConfigError(
      `${file}: cannot create the development secret key file: ${(error as Error).message}; let the user aa-oidc runs as write the data directory (AA_OIDC_DATA_DIR), ${fix}`,
    );
  }
}

/** `setting` names where the URL came from, for messages. */
export function parseDatabaseUrl(
  given: string,
  cwd: string,
  setting = 'AA_OIDC_DATABASE_URL',
): DatabaseTarget {
  if (/^\s*postgres(ql)?:\/\//.test(given)) {
    const url = urlAsWritten(given, setting);
    // Refused here, naming the setting: the driver would fail only when connecting, with "Invalid
    // URL" and no word of which part.
    if (!postgresDriverReads(url, setting))
      throw new ConfigError(
        `${setting}: "${redactUrl(url)}" is not a valid URL; use postgres://USER:PASSWORD@HOST:PORT/DB (${URL_PARTS_HINT})`,
      );
    return { kind: 'postgres', url };
  }
  const url = given;
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (file === '')
      throw new ConfigError(`${setting}: "${url}" names no file; use sqlite:./data/aa-oidc.sqlite`);
    return { kind: 'sqlite', path: file === ':memory:' ? file : path.resolve(cwd, file) };
  }
  throw new ConfigError(
    `${setting}: "${redactUrl(url)}" is not supported; use sqlite:PATH or postgres://USER@HOST/DB`,
  );
}

/**
 * A PostgreSQL, MariaDB or MySQL URL in the form both drivers read as it was written: a password
 * (or a database name, a parameter) holding spaces or a `%` that starts no `%XX` is read as it
 * stands, by either driver. Left alone, node-postgres (pg-connection-string) reads such a URL with
 * its other escapes taken literally (`my pass%2Fword` as `my pass%2Fword`, not `my pass/word`), and
 * mysql2 stops at the first connection with "URI malformed". Spaces around the URL are dropped, as
 * the WHATWG URL parser drops them. A tab, a line break or another control character inside it is
 * refused, naming `setting`: both parsers drop it without a word, and the password sent would be
 * another one.
 */
function urlAsWritten(url: string, setting: string): string {
  const trimmed = url.replace(/^\s+|\s+$/g, '');
  if ([...trimmed].some(isControlCharacter)) {
    throw new ConfigError(
      `${setting}: "${redactUrl(trimmed)}" holds a tab, a line break or another control character; remove it, or percent-encode it if the password holds it (like %09 for a tab)`,
    );
  }
  return trimmed.replaceAll(' ', '%20').replace(/%(?![0-9A-Fa-f]{2})/g, '%25');
}

function isControlCharacter(character: string): boolean {
  const code = character.charCodeAt(0);
  return code < 0x20 || code === 0x7f;
}

/** What a database URL that does not parse usually got wrong. */
const URL_PARTS_HINT =
  "a port from 1 to 65535; a password's special characters percent-encoded, like %40 for @, %2F for /, %3A for :, %3F for ?, %23 for #";

/**
 * Whether the PostgreSQL driver can read `url`: the driver's own parser (pg-connection-string). It
 * also reads the files the URL names (`sslrootcert`, `sslcert`, `sslkey`): one it cannot read is
 * refused here, naming `setting`, the parameter and the path, rather than as a bare ENOENT when
 * connecting.
 */
function postgresDriverReads(url: string, setting: string): boolean {
  for (const parameter of POSTGRES_URL_FILES) {
    for (const file of urlParameterValues(url, parameter)) refuseLargeUrlFile(parameter, file, setting);
  }
  refuseUnknownSslMode(url, setting);
  refuseUnknownSslFlag(url, setting);
  refuseLibpqCompatSurprises(url, setting);
  try {
    // An '@' in the database name as the driver reads it (it decodes no %40 there) is a password's
    // '@' or '/' left unencoded: `postgres://aa:ab@/cd@db/aa` is read as no host and the database
    // `cd@db/aa`, `postgres://aa:1234/cd@db/aa` as the host `aa`, port 1234 and the database
    // `cd@db/aa`; the connection would go elsewhere, and its errors name part of the password.
    return !parsePostgresUrl(url).database?.includes('@') && !atAfterHost(url);
  } catch (error) {
    const unreadable = unreadableUrlFile(error, url);
    if (unreadable !== undefined) throw new ConfigError(`${setting}: ${unreadable}`);
    return false;
  }
}

/**
 * The values of `sslmode` node-postgres (pg-connection-string) acts on; an empty one is no `sslmode`.
 * `no-verify` is its own: TLS without checking the certificate.
 */
const POSTGRES_SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];

/**
 * An `sslmode` the driver does not know (`bogus`, `Require`) is refused here, naming it: the driver
 * takes it for TLS with the certificate checked, and a server without TLS then reads as "does not
 * accept TLS connections". Its value is shown as a log line would show it (`redactUrl`): a password
 * left unencoded may run on into it (`?sslmode=require?password=…`).
 */
function refuseUnknownSslMode(url: string, setting: string): void {
  for (const mode of urlParameterValues(url, 'sslmode')) {
    if (mode === '' || POSTGRES_SSL_MODES.includes(mode)) continue;
    throw new ConfigError(
      `${setting}: sslmode ${JSON.stringify(redactUrl(mode))} is not a mode the PostgreSQL driver knows; use one of ${POSTGRES_SSL_MODES.join(', ')} (lower case)`,
    );
  }
}

/**
 * The values of a PostgreSQL URL's own `ssl` parameter node-postgres reads as written: `true` and `1`
 * (TLS, the certificate checked), `0` (no TLS), `no-verify` (TLS, the certificate not checked); an
 * empty one is no `ssl`.
 */
const POSTGRES_SSL_FLAGS = ['true', '1', '0', 'no-verify'];

/**
 * The parameters that make node-postgres ignore `ssl` altogether (any of them with a value: TLS is
 * then what `sslmode` and the files say).
 */
const POSTGRES_SSL_OVERRIDING = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey'];

/**
 * An `ssl` the driver does not read as written (`bogus`, `require`, even `false`) is refused here,
 * naming it and what is valid: the driver takes any other text for TLS with the certificate checked,
 * and a server without TLS then reads as "does not accept TLS connections". The driver acts on its
 * last value, and so does this; the value is shown as in `refuseUnknownSslMode`. Beside `sslmode` or
 * a certificate file the driver ignores `ssl` (`?ssl=false&sslmode=disable` connects without TLS), so
 * it is not judged there.
 */
function refuseUnknownSslFlag(url: string, setting: string): void {
  if (POSTGRES_SSL_OVERRIDING.some((parameter) => (urlParameterValues(url, parameter).at(-1) ?? '') !== ''))
    return;
  const flag = urlParameterValues(url, 'ssl').at(-1);
  if (flag === undefined || flag === '' || POSTGRES_SSL_FLAGS.includes(flag)) return;
  throw new ConfigError(
    `${setting}: ssl ${JSON.stringify(redactUrl(flag))} is not a value the PostgreSQL driver reads as written (it would turn TLS on, checking the certificate); use sslmode (one of ${POSTGRES_SSL_MODES.join(', ')}), like ?sslmode=verify-full&sslrootcert=/path/to/ca.pem, or the driver's ssl=${POSTGRES_SSL_FLAGS.join(', ssl=')}, or leave it out`,
  );
}

/**
 * Whether node-postgres reads the `sslmode` of the PostgreSQL URL `url` with libpq's meanings
 * (`uselibpqcompat=true`, its last value, as the driver reads it): `require` then encrypts without
 * checking the certificate, or checks only its authority with `sslrootcert`.
 */
export function usesLibpqSslModes(url: string): boolean {
  return urlParameterValues(url, 'uselibpqcompat').at(-1) === 'true';
}

/**
 * What node-postgres (pg-connection-string) would read otherwise than the URL says under
 * `uselibpqcompat=true` (libpq's meanings of `sslmode`: `require` encrypts without checking the
 * certificate), refused here, naming the parameters and what to write instead:
 * - a `uselibpqcompat` other than `true` or `false` (`TRUE`, `1`), which the driver ignores: the
 *   `sslmode` would then keep node-postgres's meaning (`require` checks the certificate);
 * - `sslmode=no-verify`, node-postgres's own mode, which its libpq reading does not know: the
 *   certificate would be checked after all, against what the URL says;
 * - `sslmode=verify-ca` without `sslrootcert`, which the driver refuses with a warning of its own,
 *   read here as no valid URL at all.
 * The driver acts on a parameter's last value, and so does this.
 */
function refuseLibpqCompatSurprises(url: string, setting: string): void {
  const compat = urlParameterValues(url, 'uselibpqcompat').at(-1);
  if (compat === undefined || compat === '' || compat === 'false') return;
  if (compat !== 'true')
    throw new ConfigError(
      `${setting}: uselibpqcompat ${JSON.stringify(redactUrl(compat))} is not a value the PostgreSQL driver acts on (it would read sslmode with its own meanings); use uselibpqcompat=true for libpq's meanings, or leave it out`,
    );
  const mode = urlParameterValues(url, 'sslmode').at(-1);
  if (mode === 'no-verify')
    throw new ConfigError(
      `${setting}: sslmode=no-verify is not a mode with uselibpqcompat=true (the driver would check the certificate after all); for TLS without checking the certificate, use sslmode=require, or leave uselibpqcompat out`,
    );
  if (mode === 'verify-ca' && urlParameterValues(url, 'sslrootcert').every((file) => file === ''))
    throw new ConfigError(
      `${setting}: sslmode=verify-ca with uselibpqcompat=true needs sslrootcert=/path/to/ca.pem (the authority the server's certificate must come from); or use sslmode=verify-full, which also checks the host name`,
    );
}

/**
 * Whether an '@' lies after the URL's host where no URL puts one: in its path, a parameter's name
 * or its fragment. The drivers end the host at the first '/', '?' or '#', so a password holding one
 * of them unencoded is read as the host, the port and the rest: `postgres://aa:1234?x@db/aa` is the
 * host `aa`, the port 1234 and the parameter `x@db/aa`; the connection goes elsewhere and its errors
 * name the password's digits. An '@' in a parameter's value is let pass: a password may be given as
 * `?password=…`, and both drivers read it whole there.
 */
function atAfterHost(url: string): boolean {
  const afterScheme = url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const hostEnd = afterScheme.search(/[/?#]/);
  if (hostEnd === -1) return false;
  const rest = afterScheme.slice(hostEnd);
  const queryAt = rest.indexOf('?');
  const fragmentAt = rest.indexOf('#');
  const pathEnd = Math.min(...[queryAt, fragmentAt, rest.length].filter((at) => at !== -1));
  if (rest.slice(0, pathEnd).includes('@')) return true;
  if (fragmentAt !== -1 && (queryAt === -1 || fragmentAt < queryAt)) return rest.includes('@', fragmentAt);
  const [query, fragment = ''] = rest.slice(queryAt + 1).split(/#(.*)/s);
  return fragment.includes('@') || query!.split('&').some((pair) => pair.split('=', 1)[0]!.includes('@'));
}

/** What each parameter of a database URL that names a file wants the file to hold (PEM). */
const URL_FILE_HOLDS: Readonly<Record<string, string>> = {
  // node-postgres (pg-connection-string)
  sslrootcert: "the certificate of the authority that issued the server's certificate",
  sslcert: "this client's certificate",
  sslkey: "this client's private key",
  // MariaDB and MySQL, with the `mysql` client's option names (src/alliance-auth/mysql-tls.ts)
  'ssl-ca': "the certificate of the authority that issued the server's certificate",
  'ssl-cert': "this client's certificate",
  'ssl-key': "this client's private key",
};

/** The parameters of a PostgreSQL URL that name a file the driver reads. */
const POSTGRES_URL_FILES = ['sslrootcert', 'sslcert', 'sslkey'];

/**
 * The parameters of a MariaDB or MySQL URL that name a file, each with its other spelling (the
 * `mysql` client takes both; the first present counts, its last value): aa-oidc reads these files
 * itself and gives mysql2 their contents.
 */
export const MYSQL_URL_FILES = {
  'ssl-ca': ['ssl-ca', 'ssl_ca'],
  'ssl-cert': ['ssl-cert', 'ssl_cert'],
  'ssl-key': ['ssl-key', 'ssl_key'],
} as const;

/**
 * TLS to Alliance Auth's MariaDB or MySQL as its URL's `ssl-mode` names it, with the `mysql` client's
 * values (`mysqlUrlParts` reads them).
 */
export const MYSQL_SSL_MODES = ['DISABLED', 'REQUIRED', 'VERIFY_CA', 'VERIFY_IDENTITY'] as const;

/** The spellings of a MariaDB or MySQL URL's `ssl-mode` (the first present counts, its last value). */
export const MYSQL_SSL_MODE_PARAMETERS = ['ssl-mode', 'ssl_mode'] as const;

/**
 * Why `mode`, the `ssl-mode` of a MariaDB or MySQL URL as written, is none of `MYSQL_SSL_MODES` (in
 * any case), as a message without the setting's name; undefined when it is one. Shown as a log line
 * would show it (`redactUrl`): a password left unencoded may run on into it.
 */
export function mysqlSslModeProblem(mode: string): string | undefined {
  if ((MYSQL_SSL_MODES as readonly string[]).includes(mode.toUpperCase())) return undefined;
  return `ssl-mode ${JSON.stringify(redactUrl(mode))} is not one of ${MYSQL_SSL_MODES.join(', ')}`;
}

/**
 * What would be refused of a MariaDB or MySQL URL's TLS parameters, as a message without the
 * setting's name (the caller adds it); undefined when nothing is. An `ssl-mode` the `mysql` client
 * does not know (`mysqlSslModeProblem`): at configuration load, rather than when Alliance Auth's
 * database is first opened. And what the driver (mysql2) would refuse of the URL's own `ssl`
 * parameter: the driver takes its last value as JSON, else as text: a JSON object of its TLS
 * options, a value without TLS (`false`, `0`, `null`), or the name of one of its TLS profiles
 * (`MYSQL_SSL_PROFILES`). Any other (`bogus`, `true`, `required`) failed only at the first
 * connection, with "Unknown SSL profile 'bogus'" or "SSL profile must be an object", naming neither
 * the setting nor what is valid. The value is shown as a log line would show it (`redactUrl`): a
 * password left unencoded may run on into it.
 */
export function mysqlTlsParameterProblem(url: string): string | undefined {
  const parameters = new URL(url).searchParams;
  const mode = MYSQL_SSL_MODE_PARAMETERS.map((name) => parameters.getAll(name).at(-1)).find(
    (value) => value !== undefined,
  );
  if (mode !== undefined) {
    const modeProblem = mysqlSslModeProblem(mode);
    if (modeProblem !== undefined) return modeProblem;
  }
  // Beside the mysql client's TLS parameters `ssl` is judged with them (mysqlUrlParts: ignored with
  // ssl-mode=DISABLED, refused otherwise as TLS given twice).
  if (MYSQL_TLS_PARAMETERS.some((name) => parameters.has(name))) return undefined;
  const value = parameters.getAll('ssl').at(-1);
  if (value === undefined) return undefined;
  let read: unknown = value;
  try {
    read = JSON.parse(value);
  } catch {
    // Not JSON: the driver takes the text as a profile's name.
  }
  const reads =
    typeof read === 'string'
      ? MYSQL_SSL_PROFILES.includes(read)
      : read === false || read === 0 || read === null || (typeof read === 'object' && !Array.isArray(read));
  if (reads) return undefined;
  return `ssl ${JSON.stringify(redactUrl(value))} is not a value the MariaDB/MySQL driver reads; for TLS use ssl-mode (one of ${MYSQL_SSL_MODES.join(', ')}) with ssl-ca, like ?ssl-mode=VERIFY_IDENTITY&ssl-ca=/path/to/ca.pem, or leave ssl out; the driver's own ssl takes only a JSON object of its TLS options (ssl={"rejectUnauthorized":true}), ${MYSQL_SSL_PROFILES.map((name) => `"${name}"`).join(', ')}, or false`;
}

/** The `mysql` client's TLS parameters a MariaDB/MySQL URL may carry, in both spellings. */
const MYSQL_TLS_PARAMETERS: readonly string[] = [
  ...MYSQL_SSL_MODE_PARAMETERS,
  ...Object.values(MYSQL_URL_FILES).flat(),
];

/** The TLS profiles the MariaDB/MySQL driver (mysql2) knows by name, for its `ssl` parameter. */
const MYSQL_SSL_PROFILES: readonly string[] = ['Amazon RDS'];

/**
 * What a failure to read a file named by a PostgreSQL URL means, as `cannot read PATH (sslrootcert):
 * REASON; what to do`; undefined when `error` is not the driver's failure to open such a file. The
 * driver reads them when it parses the URL: at configuration load here, and again at each connection.
 */
export function unreadableUrlFile(error: unknown, url: string): string | undefined {
  const { code, path: failed, syscall } = (error ?? {}) as NodeJS.ErrnoException;
  const named = POSTGRES_URL_FILES.flatMap((parameter) =>
    urlParameterValues(url, parameter).map((file) => ({ parameter, file })),
  );
  // Opening a folder succeeds: reading it fails, with no path given.
  const found =
    syscall === 'open' && typeof failed === 'string'
      ? named.find(({ file }) => file === failed)
      : code === 'EISDIR'
        ? named.find(({ file }) => isFolder(file))
        : undefined;
  return found === undefined ? undefined : unreadableFile(error, found.parameter, found.file);
}

/**
 * Why the file `file`, which the URL parameter `parameter` (a key of `URL_FILE_HOLDS`) names, could
 * not be read, and what to do: `cannot read PATH (PARAMETER): REASON; what to do`.
 */
export function unreadableFile(error: unknown, parameter: string, file: string): string {
  const holds = URL_FILE_HOLDS[parameter];
  const wanted = holds === undefined ? 'a PEM file' : `a PEM file holding ${holds}`;
  return `cannot read ${file} (${parameter}): ${whyUnreadable(error, { file: wanted })}`;
}

/**
 * The files a MariaDB or MySQL URL names (`ssl-ca`, `ssl-cert`, `ssl-key`), read here so that one
 * that cannot be read is refused at load, naming `setting`, the parameter and the path, rather than
 * when Alliance Auth's database is first opened. An empty value is left to that opening's message.
 */
function mysqlUrlFilesReadable(url: string, setting: string): void {
  const parameters = new URL(url).searchParams;
  for (const [parameter, spellings] of Object.entries(MYSQL_URL_FILES)) {
    const file = spellings.map((name) => parameters.getAll(name).at(-1)).find((value) => value !== undefined);
    if (file === undefined || file === '') continue;
    // Read once: whether it can be read, and that it is not too large (`refuseLargeUrlFile`).
    let bytes: Buffer | undefined;
    try {
      bytes = readFileAtMost(file, URL_FILE_LIMIT);
    } catch (error) {
      throw new ConfigError(`${setting}: ${unreadableFile(error, parameter, file)}`);
    }
    if (bytes === undefined) throw urlFileTooLarge(parameter, file, setting);
  }
}

/** The largest file a database URL may name: a bundle of every public authority's certificate is about 200 KB. */
const URL_FILE_LIMIT = 1024 * 1024;

/**
 * Refuses a file the URL parameter `parameter` names that holds more than `URL_FILE_LIMIT` bytes
 * (/dev/zero, a file named by mistake): the drivers read it whole, until the memory runs out. One
 * that cannot be read is left to the caller's message.
 */
function refuseLargeUrlFile(parameter: string, file: string, setting: string): void {
  let bytes: Buffer | undefined;
  try {
    bytes = readFileAtMost(file, URL_FILE_LIMIT);
  } catch {
    return;
  }
  if (bytes === undefined) throw urlFileTooLarge(parameter, file, setting);
}

/** The refusal of a file a URL names that holds more than `URL_FILE_LIMIT` bytes. */
function urlFileTooLarge(parameter: string, file: string, setting: string): ConfigError {
  const holds = URL_FILE_HOLDS[parameter];
  return new ConfigError(
    `${setting}: ${file} (${parameter}) is larger than ${URL_FILE_LIMIT / 1024 / 1024} MiB; name a PEM file${holds === undefined ? '' : ` holding ${holds}`}`,
  );
}

function isFolder(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/** The values of the query parameter `name` of `url`, percent-decoded as the driver reads them. */
function urlParameterValues(url: string, name: string): string[] {
  const values: string[] = [];
  for (const match of url.matchAll(/[?&]([^=&#]*)=([^&#]*)/g)) {
    if (decodedName(match[1]!) === name) values.push(decodedName(match[2]!));
  }
  return values;
}

/**
 * A query parameter that carries a password or another secret: PostgreSQL's and MariaDB's drivers
 * read every parameter of the URL as an option, `?password=…` (or libpq's `sslpassword`, mysql2's
 * `password1`…) too; a name is judged as the drivers read it, percent-decoded.
 */
const SECRET_PARAMETER_NAME = /pass|pwd|secret|token/i;

/**
 * A parameter's name and its `=`, after `?`, `&`, `;` or `#`: found anywhere, inside another
 * parameter's value too (`?sslmode=require?password=…`, a user's password holding `?x=`), so that
 * no value hides a secret parameter from the scan. The name holds none of those characters: each
 * character is scanned once (a run of `?` took seconds when every one rescanned the rest).
 */
const PARAMETER_NAME = /[?&;#]([^=?&;#]*)=/g;

/**
 * Hides the passwords of a URL (the user's, and those given as query parameters) for a message.
 * What a log line would hide of it (`scrubString`, the log's reader) is hidden first, so that a
 * message never shows more of a URL than the log does; then this reading, which takes the whole
 * text for one URL (white space and all) and hides more where the two differ.
 */
export function redactUrl(url: string): string {
  return redactUrlAsConfig(scrubString(url));
}

function redactUrlAsConfig(url: string): string {
  // The parameters first: a password given there may hold an '@', which the user's part below
  // would take for the end of the user's password.
  let redacted = '';
  let copied = 0;
  for (const match of url.matchAll(PARAMETER_NAME)) {
    if (match.index < copied || !SECRET_PARAMETER_NAME.test(decodedName(match[1]!))) continue;
    // Up to the next '&', the drivers' only separator: a ';' is the password's own to them, and a
    // '#' (unencoded) ends what they read but is still the operator's password.
    const start = match.index + match[0].length;
    const next = url.indexOf('&', start);
    redacted += `${url.slice(copied, start)}***`;
    copied = next === -1 ? url.length : next;
  }
  return redactUserPassword(redacted + url.slice(copied));
}

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name; // not valid percent-encoding: judged as written
  }
}

function redactUserPassword(url: string): string {
  // The password is whatever lies between the user's ':' and the last '@': generated passwords
  // hold unencoded '/', '@' or '?' often enough (a URL that then does not parse at all).
  const at = url.lastIndexOf('@');
  if (at === -1) return url;
  // After `scheme://`; without it (`postgres:/u:p@h`, `u:p@h`: a mistyped URL, which is what an
  // error message shows), from the first ':', the scheme's or the user's.
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url);
  const colon = url.indexOf(':', authority ? authority[0].length : 0);
  if (colon === -1 || colon > at) return url;
  return `${url.slice(0, colon)}:***${url.slice(at)}`;
}

/** The YAML library, loaded only when a configuration file is read (memory). */
function yamlLibrary(): typeof yaml {
  return createRequire(import.meta.url)('yaml') as typeof yaml;
}

/**
 * YAML's integers and floats written otherwise than in decimal digits (`0x10`, `0o20`, `1e3`) are
 * read as text, which a number's key refuses, naming it, as it refuses them from the environment:
 * YAML would read them as 16, 16 and 1000, values the operator may not have meant (YAML 1.1 reads
 * `0o20` as text, `020` as 16).
 */
const notDecimal = (tags: yaml.Tags): yaml.Tags =>
  tags.map((tag): yaml.Tags[number] =>
    typeof tag === 'object' &&
    !('collection' in tag && tag.collection) &&
    /^tag:yaml\.org,2002:(?:int|float)$/.test(tag.tag) &&
    ['HEX', 'OCT', 'EXP'].includes(tag.format ?? '')
      ? ({ ...tag, resolve: (source: string) => source } as yaml.ScalarTag)
      : tag,
  );

function parseYaml(text: string): unknown {
  // Silent: the parser would print a warning (an unknown `!tag`) with its excerpt of the line, which
  // may hold a secret. A warning stops loading like an error, since the value would not be as written.
  const documents = yamlLibrary().parseAllDocuments(text, { logLevel: 'silent', customTags: notDecimal });
  if (!Array.isArray(documents)) return null; // no document at all: an empty file, or comments only
  for (const document of documents) {
    const problem = document.errors[0] ?? document.warnings[0];
    if (problem) throw problem;
    // A `%YAML 1.1` directive switches to YAML 1.1's readings (`0b11`, `1_000`, `1:30` as numbers,
    // `yes` as true), which `notDecimal` does not cover: refused rather than read otherwise.
    const version = document.directives?.yaml.version;
    if (version !== undefined && version !== '1.2')
      throw new ConfigError(
        `asks for YAML ${version} (a %YAML directive), which reads some values otherwise; remove the directive (YAML 1.2)`,
      );
  }
  // parseDocument would read the first document and drop the others without a word (two files
  // joined with `---`): every setting after the first `---` would be lost.
  // An empty one (after a closing `---`) holds nothing to lose.
  const settings = documents.map((document) => document.toJS() as unknown).filter((value) => value != null);
  if (settings.length > 1)
    throw new ConfigError(
      `holds ${settings.length} YAML documents (separated by ---); put every setting in one document`,
    );
  return settings[0] ?? null;
}

/**
 * Where a JSON text gives a key twice in one object (`line 3, column 5`), or undefined: YAML's
 * reading of the text, a superset of JSON's, refuses a repeated key. Only that finding counts.
 */
function repeatedJsonKey(text: string): string | undefined {
  try {
    const document = yamlLibrary().parseDocument(text, { logLevel: 'silent', uniqueKeys: true });
    const repeated = document.errors.find((error) => error.code === 'DUPLICATE_KEY');
    return repeated && / at (line \d+, column \d+)/.exec(repeated.message)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * YAML's messages that quote the text they stumbled on, which may be the start of a secret (an
 * unquoted value beginning with `*`, `!`, `|` or `>` is read as an alias, a tag or a block scalar),
 * said without it; the others quote only an indicator character.
 */
const QUOTING_YAML_MESSAGES: ReadonlyArray<readonly [RegExp, string]> = [
  [
    /^Unresolved alias\b/,
    'a value starting with * is read as an alias to an anchor that does not exist (quote the value)',
  ],
  [/^Unresolved tag\b/, 'a value starting with ! is read as a tag that does not exist (quote the value)'],
  [
    /^Block scalar header includes extra characters/,
    'a value starting with | or > is read as a block scalar header, which takes no other characters (quote the value)',
  ],
  [
    /^Invalid escape sequence/,
    'invalid escape sequence in a double-quoted value (write \\\\ for a backslash, or use single quotes)',
  ],
];

/**
 * Where `JSON.parse` gives up on `text`, said as Node.js says it (`at position 13 (line 1 column
 * 14)`): the end of the shortest start of the text that no JSON can begin with. A start that JSON
 * may continue fails only at its end, or parses.
 */
function jsonErrorPosition(text: string): string | undefined {
  const cannotContinue = (length: number): boolean => {
    try {
      JSON.parse(text.slice(0, length));
      return false;
    } catch (error) {
      const message = (error as Error).message;
      return (
        !message.startsWith('Unexpected end of JSON input') &&
        !new RegExp(`at position ${length}\\b`).test(message)
      );
    }
  };
  if (!cannotContinue(text.length)) return undefined;
  let low = 1;
  let high = text.length;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (cannotContinue(middle)) high = middle;
    else low = middle + 1;
  }
  const offset = low - 1;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `at position ${offset} (line ${line} column ${column})`;
}

function withoutQuotedYaml(firstLine: string): string {
  const position = / at line \d+, column \d+$/.exec(firstLine)?.[0] ?? '';
  for (const [pattern, said] of QUOTING_YAML_MESSAGES) {
    if (pattern.test(firstLine)) return `${said}${position}`;
  }
  return firstLine;
}
