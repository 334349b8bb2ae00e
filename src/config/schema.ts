import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { quotedName } from '../util/hidden-characters.ts';
import { urlHasCredentials } from '../util/url-credentials.ts';
import { parseDecimalNumber, parseWholeNumber } from '../util/whole-number.ts';

/**
 * The one configuration schema. Every key is reachable from the config file (camelCase, nested as
 * below) and from the environment: `AA_OIDC_` + the path in UPPER_SNAKE_CASE joined by `_`
 * (`tokens.jwtSizeWarnBytes` → `AA_OIDC_TOKENS_JWT_SIZE_WARN_BYTES`). The few names from the spec's
 * table that do not follow that rule are listed in `ENV_ALIASES`.
 *
 * Environment values are strings; the leaf helpers below accept both the native type (config file)
 * and its string form (environment).
 */

const fromString = <T extends z.ZodType>(parse: (text: string) => unknown, inner: T) =>
  z.preprocess((value) => (typeof value === 'string' ? parse(value.trim()) : value), inner);

/** An integer from `min` to `max`; `note` (like `0: no limit`) is told with the range. */
const integer = (min: number, max: number, note?: string) => {
  const expected = `expected an integer between ${min} and ${max}${note ? ` (${note})` : ''}`;
  return fromString(
    (text) => parseWholeNumber(text) ?? text,
    z.number({ error: expected }).int(expected).min(min, expected).max(max, expected),
  );
};

const boolean = () =>
  fromString(
    (text) => {
      const lowered = text.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lowered)) return true;
      if (['false', '0', 'no', 'off'].includes(lowered)) return false;
      return text;
    },
    z.boolean({ error: 'expected true or false' }),
  );

/** A comma-separated list's members, trimmed, without empty ones. */
const splitList = (text: string) =>
  text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);

/**
 * A list: a list in the config file, comma-separated in the environment. `described` says what a
 * valid list holds, for the message about a value that is no list at all.
 */
const listOf = <T extends z.ZodType>(item: T, described: string, min = 0) =>
  fromString(
    splitList,
    z
      .array(item, { error: `expected a list of ${described} (comma-separated in the environment)` })
      .min(min, `expected a list of ${described}, at least ${min}`),
  );

/**
 * The fewest characters of AA_OIDC_SECRET_KEY; `import plugin-apps` warns of a client secret the
 * Python plugin kept in clear that is shorter.
 */
export const SECRET_KEY_MIN_LENGTH = 32;

/**
 * A secret: long enough, and not only spaces (a blank value, such as an unfilled template's, passes
 * a length check while protecting nothing). `valid` says what to give instead.
 */
const secret = (min: number, valid: string) =>
  z
    .string({ error: `expected ${valid}` })
    // Aborting: an empty value is told once, not also as "only spaces".
    .min(min, {
      error: min > 1 ? `must be at least ${min} characters` : `must not be empty; use ${valid}`,
      abort: true,
    })
    .refine((text) => text.trim() !== '', `must not be only spaces; use ${valid}`);

/**
 * A text that must not be empty (an unfilled template's `AA_OIDC_HOST=`): `valid` says what to give,
 * for the message about an empty value or one that is no text.
 */
const nonEmpty = (valid: string) =>
  z.string({ error: `expected ${valid}` }).min(1, `must not be empty; use ${valid}`);

/**
 * A host name of letters, digits, hyphens and underscores (a Docker service name may hold one, and
 * the resolver takes it) in labels of 1–63, none starting or ending with `-`.
 */
const HOST_NAME =
  /^(?=.{1,253}\.?$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$/;

/**
 * An address to listen on: an IP address, or a host name (`HOST_NAME`) whose last label is not all
 * digits (`127.0.0.256` is no address, and no name either). Checked here, naming the setting, rather
 * than when the server fails to listen.
 */
export function isListenHost(text: string): boolean {
  if (ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text)) return true;
  return HOST_NAME.test(text) && !/(?:^|\.)\d+\.?$/.test(text);
}

/** A listen address (`isListenHost`); `valid` says what to give. */
const listenHost = (valid: string) =>
  z
    .string({ error: `expected ${valid}` })
    .min(1, { error: `must not be empty; use ${valid}`, abort: true })
    .refine(
      isListenHost,
      `is not an IP address or a host name; use ${valid}, or a host name of letters, digits, hyphens and underscores (like localhost)`,
    );

const DELAYS = '1 to 20 delays in seconds (like 5,10,20,40,80)';
const notADelay = (issue: { input?: unknown }) =>
  `${JSON.stringify(issue.input)} is not a delay: expected a whole number of seconds from 1 to 86400, in decimal digits`;

const notAnAddressRange = (issue: { input?: unknown }) =>
  `${JSON.stringify(issue.input)} is not an IP address or CIDR range (like 10.0.0.0/8 or fd00::/8)`;

/** An IP address (a range of one) or a CIDR range. */
export function isAddressRange(text: string): boolean {
  if (text.includes('/')) {
    try {
      ipaddr.parseCIDR(text);
      return true;
    } catch {
      return false;
    }
  }
  return ipaddr.isValid(text);
}

/**
 * A scope name (RFC 6749 section 3.3, scope-token): printable ASCII but the space, `"` and `\`. A list
 * entry `openid profile` is two scopes written as one, which no request would ever name.
 */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const SCOPE_TOKEN_RULE = 'a scope name is printable ASCII without spaces, " or \\ (RFC 6749, section 3.3)';

const httpUrl = z.url({
  protocol: /^https?$/,
  normalize: false,
  error: 'expected an http:// or https:// URL',
});

/** serve's connection caps unless configured otherwise (`http.*`; docs/deployment.md "Connection limits"). */
export const DEFAULT_HTTP_CONNECTION_CAPS = { maxConnections: 1000, maxConnectionsPerAddress: 100 } as const;

/** The scope that carries the EVE claims unless configured otherwise (as the Python plugin's `profile`). */
export const DEFAULT_EVE_CLAIMS_SCOPE = 'profile';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const ACCESS_TOKEN_FORMATS = ['opaque', 'jwt'] as const;
/** The kinds of audit event (src/audit/events.ts, which checks that its union has exactly these). */
export const AUDIT_EVENT_KIND_NAMES = [
  'token_issued',
  'token_revoked',
  'code_reuse_detected',
  'token_introspected',
  'logout_required',
  'logout_dispatched',
  'policy_denied',
  'admin_change',
  'sessions_ended',
  'two_factor_failed',
] as const;
export const PORTRAIT_SIZES: readonly number[] = [32, 64, 128, 256, 512, 1024];
export const DIRECTORY_SOURCES = ['builtin', 'alliance-auth'] as const;
/** CCP's EVE SSO v2 endpoints, the defaults (tests point them at a local stand-in). */
export const EVE_SSO_ENDPOINTS = {
  authorizationUrl: 'https://login.eveonline.com/v2/oauth/authorize',
  tokenUrl: 'https://login.eveonline.com/v2/oauth/token',
  jwksUrl: 'https://login.eveonline.com/oauth/jwks',
} as const;

export const configSchema = z
  .object({
    mode: z.enum(['development', 'production']).optional(),
    port: integer(0, 65535).default(8000),
    host: listenHost('a listen address (like 127.0.0.1, 0.0.0.0 or ::)').optional(),
    // An issuer identifier has no query, fragment or credentials (OpenID Connect Discovery 1.0, 2):
    // refused here, naming the setting, rather than by the provider when `serve` starts.
    issuer: httpUrl
      .refine((value) => !/[?#]/.test(value), 'must have no query (?) or fragment (#)')
      .refine((value) => !urlHasCredentials(value), 'must not carry a user or password')
      .optional(),
    databaseUrl: nonEmpty('sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB').default(
      'sqlite:./data/aa-oidc.sqlite',
    ),
    /**
     * How long opening a PostgreSQL connection may take (TCP connect to the server's first answer):
     * past it a command stops naming the host and port, and a request answers 503 "try again".
     */
    databaseConnectTimeoutMs: integer(100, 600_000).default(5000),
    secretKey: secret(
      SECRET_KEY_MIN_LENGTH,
      `at least ${SECRET_KEY_MIN_LENGTH} random characters (like the output of \`openssl rand -hex 32\`)`,
    ).optional(),
    dataDir: nonEmpty('a directory (like ./data or /var/lib/aa-oidc)').default('./data'),
    trustProxy: boolean().default(false),
    /**
     * With `trustProxy`: how many reverse proxies in front of aa-oidc append to X-Forwarded-For. The
     * client address is taken that many entries from the right, never from the left, where a client
     * can write anything.
     */
    trustedProxyHops: integer(1, 10).default(1),
    /**
     * With `trustProxy`: the peers whose X-Forwarded-For/-Proto/-Host are believed, as IP addresses
     * or CIDR ranges. A request from any other peer is taken as it arrived, its forwarded headers
     * dropped: a client that reaches the port directly cannot choose its address or host.
     */
    trustedProxies: listOf(
      z.string({ error: notAnAddressRange }).refine(isAddressRange, { error: notAnAddressRange }),
      'proxy IP addresses or CIDR ranges (like 10.0.0.0/8,fd00::/8)',
      1,
    ).default(['127.0.0.0/8', '::1/128']),
    /**
     * How many connections `serve` holds open at once (0: no limit): in all, and from one client
     * address (an IPv6 client: its /64), so that one client cannot take every place; with
     * `trustProxy`, the `trustedProxies` are not counted per address. The request timeouts are fixed
     * (src/http/server-limits.ts). And how long a stop waits for the requests in flight.
     */
    http: z
      .object({
        maxConnections: integer(0, 1_000_000, '0: no limit').default(
          DEFAULT_HTTP_CONNECTION_CAPS.maxConnections,
        ),
        maxConnectionsPerAddress: integer(0, 1_000_000, '0: no limit').default(
          DEFAULT_HTTP_CONNECTION_CAPS.maxConnectionsPerAddress,
        ),
        /**
         * How long a stop (SIGTERM, SIGINT) waits for the requests in flight before it closes their
         * connections: well under systemd's TimeoutStopSec (70 s in deploy/systemd), so that the log
         * and the audit events are flushed before a SIGKILL could come.
         */
        shutdownGraceSeconds: integer(1, 600).default(25),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        port: integer(0, 65535).default(9464),
        host: listenHost('a listen address (like 127.0.0.1 or 0.0.0.0)').default('127.0.0.1'),
        /** When set, `/metrics` is also served on the main port behind `Authorization: Bearer …`. */
        bearerToken: secret(
          16,
          'at least 16 random characters (like the output of `openssl rand -hex 16`)',
        ).optional(),
        enabled: boolean().default(true),
      })
      .strict()
      .prefault({}),
    logging: z
      .object({
        level: z.enum(LOG_LEVELS).default('info'),
        maskedSecrets: boolean().default(false),
      })
      .strict()
      .prefault({}),
    audit: z
      .object({
        jsonlPath: nonEmpty('a file path (like /var/log/aa-oidc/audit.jsonl)').optional(),
        receiverTimeoutMs: integer(1, 60_000).default(2000),
        /** Keep audit events in the database too (the admin UI's audit log, `aa-oidc audit list`). */
        database: boolean().default(true),
        /**
         * The kinds the database does not keep (they still reach the log and the JSON-lines file). By
         * default `token_introspected`: one per introspection, the most frequent event of a busy
         * resource server, which would otherwise fill the table (Keycloak likewise stores no
         * introspection event unless told to).
         */
        databaseExclude: listOf(
          z.enum(AUDIT_EVENT_KIND_NAMES, {
            error: (issue) =>
              `${JSON.stringify(issue.input)} is not an audit event kind; valid: ${AUDIT_EVENT_KIND_NAMES.join(', ')}`,
          }),
          `audit event kinds (${AUDIT_EVENT_KIND_NAMES.join(', ')})`,
        ).default(['token_introspected']),
        /** Audit events older than this many days are deleted from the database. */
        retentionDays: integer(1, 36_500).default(90),
      })
      .strict()
      .prefault({}),
    tokens: z
      .object({
        defaultAccessTokenFormat: z.enum(ACCESS_TOKEN_FORMATS).default('opaque'),
        jwtSizeWarnBytes: integer(256, 1_000_000).default(4096),
        accessTokenTtl: integer(30, 86_400).default(3600),
        refreshTokenTtl: integer(60, 31_536_000).default(86_400),
        codeTtl: integer(10, 600).default(60),
        idTokenTtl: integer(30, 86_400).default(3600),
      })
      .strict()
      .prefault({}),
    keys: z
      .object({
        /** How often each instance checks the database for a key rotation (one small query). */
        reloadIntervalMs: integer(100, 600_000).default(2000),
        /**
         * Minimum time a retired key stays published; the effective time is the larger of this and
         * the longest token lifetime (tokens.accessTokenTtl, refreshTokenTtl, idTokenTtl).
         */
        retiredRetentionSeconds: integer(0, 31_536_000).default(86_400),
        /**
         * How long relying parties may keep a copy of the JWKS (it is sent without Cache-Control, so
         * their libraries decide: from minutes to a day). `keys rotate` activates a next key only once
         * it has been published this long (plus reloadIntervalMs), unless forced.
         */
        jwksCacheSeconds: integer(0, 31_536_000).default(86_400),
      })
      .strict()
      .prefault({}),
    oidc: z
      .object({
        scopes: listOf(
          z
            .string({ error: (issue) => `${JSON.stringify(issue.input)} is not a scope name (like openid)` })
            .min(1, { error: 'a scope name must not be empty', abort: true })
            .regex(SCOPE_TOKEN, {
              error: (issue) =>
                `${quotedName(String(issue.input))} is not a scope name: ${SCOPE_TOKEN_RULE}, one scope an entry (like openid,profile)`,
            }),
          'scope names (like openid,profile,email)',
        ).default(['openid', 'profile', 'email', 'groups', 'offline_access']),
        claimPrefix: z
          .string()
          .regex(/^[a-z][a-z0-9_]*$/, 'must be lowercase letters, digits and underscores')
          .default('eve_'),
        eveClaimsScope: nonEmpty('a scope name among oidc.scopes (like profile)').default(
          DEFAULT_EVE_CLAIMS_SCOPE,
        ),
        portraitUrlTemplate: nonEmpty('a URL template with {character_id} and {size}').default(
          'https://images.evetech.net/characters/{character_id}/portrait?size={size}',
        ),
        portraitSize: integer(32, 1024)
          .refine((size) => PORTRAIT_SIZES.includes(size), `must be one of ${PORTRAIT_SIZES.join(', ')}`)
          .default(128),
        opPolicyUri: httpUrl.optional(),
        opTosUri: httpUrl.optional(),
        /** How often expired provider rows (codes, tokens, sessions) and old login failures are deleted. */
        purgeIntervalSeconds: integer(10, 86_400).default(600),
      })
      .strict()
      .prefault({}),
    /**
     * Failed sign-ins within `failureWindowSeconds`, counted in three budgets: per account and client
     * address, per account across all addresses (much larger: guesses from elsewhere must not lock
     * the owner out), per client address across accounts (an IPv6 client counts per /64). A user's
     * wrong two-factor codes have a much smaller budget across all addresses (`maxCodeFailuresPerUser`):
     * whoever reaches the code has the password, so the code is all that is left to guess.
     */
    login: z
      .object({
        maxFailuresPerAccountAndAddress: integer(1, 1000).default(5),
        maxFailuresPerAccount: integer(1, 100_000).default(50),
        maxCodeFailuresPerUser: integer(1, 1000).default(10),
        maxFailuresPerAddress: integer(1, 100_000).default(20),
        failureWindowSeconds: integer(10, 86_400).default(900),
      })
      .strict()
      .prefault({}),
    logout: z
      .object({
        rpInitiated: boolean().default(true),
        allowPrivateTargets: boolean().default(false),
        allowPrivateTargetsInProduction: boolean().default(false),
        retryBackoffSeconds: fromString(
          // A number written in decimal (`5.0` is 5); anything else (`0x10`, `1e1`) stays text, for
          // the message to name it.
          (text) => splitList(text).map((part) => parseDecimalNumber(part) ?? part),
          z
            .array(
              z
                .number({ error: notADelay })
                .int({ error: notADelay })
                .min(1, { error: notADelay })
                .max(86_400, { error: notADelay }),
              { error: `expected a list of ${DELAYS}` },
            )
            .min(1, `expected a list of ${DELAYS}`)
            .max(20, `expected a list of ${DELAYS}`),
        ).default([5, 10, 20, 40, 80]),
        recordSuccessfulDeliveries: boolean().default(false),
        /**
         * Delivery outcomes recorded in `bcl_delivery_attempt` (failures, cancellations, and successes
         * with `recordSuccessfulDeliveries`) older than this many days are deleted by the logout worker.
         * Apart from `audit.retentionDays`: they are the operator's record of what a relying party was
         * never told, which an operator keeping few audit events (or none in the database) still wants.
         */
        recordRetentionDays: integer(1, 36_500).default(90),
        /** Back-channel logout: resolving a back-channel host, connecting to it, the whole delivery. */
        dnsTimeoutMs: integer(10, 60_000).default(3000),
        connectTimeoutMs: integer(10, 60_000).default(5000),
        requestTimeoutMs: integer(10, 120_000).default(10_000),
        /**
         * `serve` delivers queued back-channel logouts too; false leaves them to `aa-oidc worker`
         * processes (a deployment with dedicated workers keeps its web instances to requests).
         */
        deliverInServe: boolean().default(true),
      })
      .strict()
      .prefault({}),
    twoFactor: z
      .object({
        /** Superusers must sign in with a TOTP code; those without one enrol at their next sign-in. */
        requiredForSuperusers: boolean().default(false),
      })
      .strict()
      .prefault({}),
    branding: z
      .object({
        /** The community's name: every page's header and title, and the logout question. */
        name: z
          .string()
          .trim()
          .min(1, 'must not be empty')
          .max(80, 'at most 80 characters')
          .default('aa-oidc'),
        /**
         * A logo shown beside the name on every page (https in production); without credentials,
         * which every page would hand to whoever reads its source.
         */
        logoUrl: httpUrl
          .refine((url) => !urlHasCredentials(url), 'must not contain credentials (user:password@)')
          .optional(),
        /** Buttons, links and focus rings; the text on it is black or white, whichever reads better. */
        accentColor: z
          .string()
          .regex(/^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/, 'expected a colour like #2459d4 or #25d')
          .default('#2459d4'),
        /** "Help" link on every page (http, https or mailto). */
        supportUrl: z
          .url({
            protocol: /^(?:https?|mailto)$/,
            normalize: false,
            error: 'expected an http://, https:// or mailto: URL (like mailto:help@example.org)',
          })
          .optional(),
      })
      .strict()
      .prefault({}),
    directory: z
      .object({
        /**
         * Where users, states and groups live: aa-oidc's own tables (`builtin`), or Alliance Auth's
         * database, read-only (`alliance-auth`). `AA_OIDC_DIRECTORY`.
         */
        source: z.enum(DIRECTORY_SOURCES).default('builtin'),
        allianceAuth: z
          .object({
            /**
             * `mysql://…` (TLS: `ssl-mode`, `ssl-ca`) or `postgres://…` (TLS: `sslmode`, `sslrootcert`)
             * with a SELECT-only login. `AA_OIDC_AA_DATABASE_URL`.
             */
            databaseUrl: nonEmpty(
              'mysql://USER:PASSWORD@HOST:3306/DB or postgres://USER:PASSWORD@HOST:5432/DB',
            ).optional(),
            /** Alliance Auth's own sign-in page: where people are sent to register or pick a main. */
            loginUrl: httpUrl.optional(),
            /** How often Alliance Auth's changes are looked for. `AA_OIDC_AA_POLL_SECONDS`. */
            pollSeconds: integer(1, 3600).default(30),
            /**
             * How long one statement on AA's database may run (waiting for a lock included) before the
             * server abandons it: MariaDB's `max_statement_time`, PostgreSQL's `statement_timeout`.
             * aa-oidc gives up an answer that has not come 5 s after it (`NO_ANSWER_MARGIN_MS`).
             * `AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS`.
             */
            statementTimeoutSeconds: integer(1, 3600).default(15),
            /** Sign-in with Alliance Auth passwords (Django's PBKDF2 or Argon2 hashes) too. `AA_OIDC_AA_PASSWORD_LOGIN`. */
            passwordLogin: boolean().default(false),
            /**
             * The `email_verified` claim: Alliance Auth verifies addresses at registration unless
             * `REGISTRATION_VERIFY_EMAIL = False`, and keeps no per-user record of it.
             */
            emailVerified: boolean().default(true),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /** Sign-in with EVE SSO v2 (the Alliance Auth directory only). `AA_OIDC_EVE_SSO_*`. */
    eveSso: z
      .object({
        clientId: nonEmpty(
          'the client id CCP shows for the application at developers.eveonline.com',
        ).optional(),
        clientSecret: secret(
          1,
          'the secret key CCP shows for the application at developers.eveonline.com',
        ).optional(),
        authorizationUrl: httpUrl.default(EVE_SSO_ENDPOINTS.authorizationUrl),
        tokenUrl: httpUrl.default(EVE_SSO_ENDPOINTS.tokenUrl),
        jwksUrl: httpUrl.default(EVE_SSO_ENDPOINTS.jwksUrl),
        /**
         * Lets EVE SSO's requests reach loopback and private addresses (a local stand-in for CCP):
         * development only. EVE SSO's own switch, not `logout.allowPrivateTargets`.
         */
        allowPrivateEndpoints: boolean().default(false),
        /**
         * The most one request to EVE SSO (the code's redemption, the keys) may take, whole: the
         * lookup, connecting and the answer to its last byte. Past it the sign-in is "unavailable".
         */
        requestTimeoutMs: integer(100, 120_000).default(10_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;

/** Names from the spec's table that differ from the mechanical path → name rule. */
export const ENV_ALIASES: Readonly<Record<string, readonly string[]>> = {
  AA_OIDC_LOG_LEVEL: ['logging', 'level'],
  AA_OIDC_DIRECTORY: ['directory', 'source'],
  AA_OIDC_AA_DATABASE_URL: ['directory', 'allianceAuth', 'databaseUrl'],
  AA_OIDC_AA_LOGIN_URL: ['directory', 'allianceAuth', 'loginUrl'],
  AA_OIDC_AA_POLL_SECONDS: ['directory', 'allianceAuth', 'pollSeconds'],
  AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS: ['directory', 'allianceAuth', 'statementTimeoutSeconds'],
  AA_OIDC_AA_PASSWORD_LOGIN: ['directory', 'allianceAuth', 'passwordLogin'],
  AA_OIDC_AA_EMAIL_VERIFIED: ['directory', 'allianceAuth', 'emailVerified'],
};

/** Environment names that are read elsewhere, never part of the schema. */
export const ENV_NOT_CONFIG: ReadonlySet<string> = new Set(['AA_OIDC_CONFIG', 'AA_OIDC_REQUIRE_E2E']);
export const ENV_NOT_CONFIG_PREFIXES: readonly string[] = ['AA_OIDC_TEST_', 'AA_OIDC_BENCH_'];
