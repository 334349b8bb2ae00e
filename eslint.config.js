import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The parts of src/ and what each may import: the table of docs/architecture.md ("The parts"),
 * enforced. A part imports itself, the parts listed here and npm packages (less those in
 * `forbiddenPackages`); any other import of a part fails `npm run lint`. The composition root
 * (src/services.ts, src/app.ts) and the CLI may use every part; no part but the CLI may use the
 * root. Cycles between folders are refused by scripts/check-folder-cycles.ts.
 */
const parts = {
  util: [],
  config: ['util'],
  logging: ['config', 'util'],
  metrics: ['logging', 'config', 'util'],
  db: ['config', 'util'],
  directory: ['db', 'logging', 'util'],
  applications: ['db', 'directory', 'config', 'logging', 'util'],
  keys: ['db', 'config', 'logging', 'util'],
  policy: ['directory', 'applications', 'util'],
  audit: ['db', 'policy', 'directory', 'applications', 'logging', 'metrics', 'config', 'util'],
  tokens: ['db', 'audit', 'directory', 'applications', 'policy', 'config', 'logging', 'metrics', 'util'],
  logout: [
    ...['db', 'audit', 'tokens', 'directory', 'applications', 'policy', 'keys'],
    ...['config', 'logging', 'metrics', 'util'],
  ],
  checks: ['applications', 'directory', 'keys', 'config', 'util'],
  http: ['db', 'config', 'logging', 'util'],
  'two-factor': ['db', 'audit', 'util'],
  // logout/ for its SSRF gate and pinned connection alone: EVE SSO's requests pass the same gate.
  'alliance-auth': ['db', 'directory', 'audit', 'config', 'logging', 'metrics', 'util', 'logout'],
  oidc: [
    ...['util', 'config', 'logging', 'metrics', 'db', 'directory', 'applications', 'keys', 'policy'],
    ...['audit', 'tokens', 'logout', 'checks', 'http', 'two-factor', 'alliance-auth'],
  ],
  demo: ['directory', 'applications', 'http', 'config', 'logging', 'util'],
  console: ['oidc', 'http', 'applications', 'directory', 'logging', 'config', 'util'],
  account: [
    'console',
    'two-factor',
    'tokens',
    'oidc',
    'directory',
    'applications',
    'policy',
    'http',
    'db',
    'config',
    'util',
  ],
  admin: [
    ...['console', 'applications', 'directory', 'keys', 'logout', 'tokens', 'audit', 'checks', 'http'],
    ...['two-factor', 'db', 'config', 'logging', 'util'],
  ],
  cli: 'all',
};

const databaseDrivers = ['kysely', 'pg', 'mysql2', 'better-sqlite3', 'pg-boss'];
const network = ['koa', 'undici', 'node:http', 'node:https', 'node:net', 'node:tls', 'node:dns'];

/** npm packages a part must not import, with the reason docs/architecture.md gives. */
const forbiddenPackages = {
  policy: {
    names: [...databaseDrivers, ...network],
    reason:
      'the policy decision imports neither storage nor transport: decide() is a pure function of plain values',
  },
  db: {
    names: network,
    reason: 'storage knows no protocol: the schema and the unit of work serve every part alike',
  },
  directory: {
    names: ['koa', 'node:http', 'node:https'],
    reason: 'the directory knows neither OIDC nor HTTP: another directory must stand behind the same port',
  },
  'alliance-auth': {
    names: ['koa', 'node:http', 'node:https'],
    reason: 'a directory knows neither OIDC nor HTTP: it stands behind the same port as the built-in one',
  },
  audit: {
    names: network,
    reason: 'audit events know no transport: an event is a value, who delivers it is someone else’s business',
  },
  config: {
    names: [...databaseDrivers, ...network],
    reason: 'configuration opens nothing: loading it connects to no database and no network',
  },
};

/** Why a part must never import another, for the rules docs/architecture.md names. */
const nevers = {
  'policy>db': 'the policy decision imports no storage: decide() is a pure function of plain values',
  'policy>logout': 'the policy decision imports no transport',
  'policy>oidc': 'the policy decision imports no transport',
  'policy>http': 'the policy decision imports no transport',
  'directory>oidc':
    'the directory knows neither OIDC nor HTTP: another directory must stand behind the same port',
  'directory>http':
    'the directory knows neither OIDC nor HTTP: another directory must stand behind the same port',
  'audit>logout': 'audit events know no transport: an event is a value',
  'audit>oidc': 'audit events know no transport: an event is a value',
  'audit>http': 'audit events know no transport: an event is a value',
};

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The no-restricted-imports options for the files of `part` that sit `depth` folders below src/. */
function restrictions(part, depth) {
  const up = escape('../'.repeat(depth));
  const allowed = parts[part];
  const patterns = [];
  if (allowed !== 'all') {
    for (const other of Object.keys(parts)) {
      if (other === part || allowed.includes(other)) continue;
      patterns.push({
        regex: `^${up}${escape(other)}/`,
        message:
          nevers[`${part}>${other}`] ??
          `${part}/ may import only ${allowed.join(', ') || 'no other part'} (docs/architecture.md, "The parts").`,
      });
    }
    patterns.push({
      regex: `^${up}(services|app)\\.ts$`,
      message: 'only the CLI uses the composition root; a part is handed what it needs.',
    });
  }
  if (part !== 'oidc') {
    patterns.push({
      regex: '^oidc-provider(/|$)',
      message: 'only oidc/ imports oidc-provider: the protocol engine is configured in one place.',
    });
  }
  const packages = forbiddenPackages[part];
  if (packages !== undefined) {
    patterns.push({
      regex: `^(${packages.names.map(escape).join('|')})(/|$)`,
      message: `${part}/: ${packages.reason} (docs/architecture.md).`,
    });
  }
  return { patterns };
}

const partRules = Object.keys(parts).flatMap((part) =>
  [1, 2, 3].map((depth) => ({
    files: [`src/${part}/${'*/'.repeat(depth - 1)}*.ts`],
    rules: { 'no-restricted-imports': ['error', restrictions(part, depth)] },
  })),
);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '.bench/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'smart'],
      'no-console': 'off',
    },
  },
  ...partRules,
  {
    files: ['src/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^oidc-provider(/|$)',
              message: 'only oidc/ imports oidc-provider: the protocol engine is configured in one place.',
            },
          ],
        },
      ],
    },
  },
);
