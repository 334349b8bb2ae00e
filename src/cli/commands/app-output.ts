import { IMPORTED_SECRET_MAX_ITERATIONS, importedSecretHash } from '../../applications/secret.ts';
import type { Application } from '../../applications/types.ts';
import { assertNever } from '../../util/assert-never.ts';
import { isoTime } from '../context.ts';
import { type Column, jsonDocument, type OutputFormat, renderRows, textLines } from '../output.ts';

/** What `aa-oidc app` prints: an application (never its secret's digest), a new secret once. */

/**
 * An application as every output shows it: never the secret, never its digest, never an imported
 * hash (only that the secret still is one, and its iteration count).
 */
export function applicationJson(app: Application): Record<string, unknown> {
  const imported = importedSecretHash(app);
  return {
    client_id: app.clientId,
    name: app.name,
    client_type: app.clientType,
    active: app.active,
    redirect_uris: app.redirectUris,
    post_logout_redirect_uris: app.postLogoutRedirectUris,
    grant_types: app.grantTypes,
    states: app.states,
    groups: app.groups,
    skip_authorization: app.skipAuthorization,
    pkce_required: app.pkceRequired,
    access_token_format: app.accessTokenFormat,
    logo_url: app.logoUrl,
    backchannel_logout_uri: app.backchannelLogoutUri,
    backchannel_logout_on_revoke_only: app.backchannelLogoutOnRevokeOnly,
    id_token_claims: app.idTokenClaims,
    debug_mode: app.debugMode,
    created_by: app.createdBy,
    created_at: isoTime(app.createdAt),
    updated_at: isoTime(app.updatedAt),
    imported_secret_hash: imported !== null,
    imported_secret_iterations: imported?.iterations ?? null,
  };
}

/** URIs cannot hold spaces (validation refuses them), so a space separates them unambiguously. */
const spaced = (items: readonly string[]) => items.join(' ');
const commaSpaced = (items: readonly string[]) => items.join(', ');

export const LIST_COLUMNS: readonly Column<Application>[] = [
  { header: 'client_id', value: (app) => app.clientId },
  { header: 'name', value: (app) => app.name },
  { header: 'type', value: (app) => app.clientType },
  { header: 'active', value: (app) => (app.active ? 'yes' : 'no') },
  { header: 'grant_types', value: (app) => spaced(app.grantTypes) },
  { header: 'states', value: (app) => commaSpaced(app.states) },
  { header: 'groups', value: (app) => commaSpaced(app.groups) },
  { header: 'redirect_uris', value: (app) => spaced(app.redirectUris) },
];

/** Every field (for CSV, and for `show`). */
export const ALL_COLUMNS: readonly Column<Application>[] = [
  { header: 'client_id', value: (app) => app.clientId },
  { header: 'name', value: (app) => app.name },
  { header: 'client_type', value: (app) => app.clientType },
  { header: 'active', value: (app) => app.active },
  { header: 'redirect_uris', value: (app) => spaced(app.redirectUris) },
  { header: 'post_logout_redirect_uris', value: (app) => spaced(app.postLogoutRedirectUris) },
  { header: 'grant_types', value: (app) => spaced(app.grantTypes) },
  // Lists, which CSV writes as a record inside the field: a name may hold a comma.
  { header: 'states', value: (app) => app.states },
  { header: 'groups', value: (app) => app.groups },
  { header: 'skip_authorization', value: (app) => app.skipAuthorization },
  { header: 'pkce_required', value: (app) => app.pkceRequired },
  { header: 'access_token_format', value: (app) => app.accessTokenFormat },
  { header: 'logo_url', value: (app) => app.logoUrl },
  { header: 'backchannel_logout_uri', value: (app) => app.backchannelLogoutUri },
  { header: 'backchannel_logout_on_revoke_only', value: (app) => app.backchannelLogoutOnRevokeOnly },
  { header: 'id_token_claims', value: (app) => app.idTokenClaims },
  { header: 'debug_mode', value: (app) => app.debugMode },
  { header: 'created_by', value: (app) => app.createdBy },
  { header: 'created_at', value: (app) => isoTime(app.createdAt) },
  { header: 'updated_at', value: (app) => isoTime(app.updatedAt) },
  // Last, so that the columns before keep their places in a CSV read by position.
  { header: 'imported_secret_hash', value: (app) => importedSecretHash(app) !== null },
  { header: 'imported_secret_iterations', value: (app) => importedSecretHash(app)?.iterations ?? null },
];

/** `show` in table format: one line per field, and what an imported hash means. */
export function describeApplication(app: Application): string {
  const fields = ALL_COLUMNS.map((column) => ({ field: column.header, value: column.value(app) }));
  const table = renderRows(
    fields,
    [
      { header: 'field', value: (row) => row.field },
      { header: 'value', value: (row) => row.value },
    ],
    'table',
    (row) => row,
  );
  const note = importedSecretNote(app);
  return note === null ? table : `${table}${textLines([note])}`;
}

/** What `show` says of a secret still held as the hash imported from the Python plugin; null otherwise. */
function importedSecretNote(app: Application): string | null {
  const imported = importedSecretHash(app);
  if (imported === null) return null;
  if (!imported.checked)
    return `its client secret is a hash imported from the Python plugin that aa-oidc never checks (${imported.iterations === null ? 'unreadable' : `${imported.iterations} PBKDF2 iterations, more than ${IMPORTED_SECRET_MAX_ITERATIONS}`}): it authenticates nobody; \`aa-oidc app rotate-secret ${app.clientId}\` gives it a new one`;
  return `its client secret is still the PBKDF2 hash imported from the Python plugin (${imported.iterations} iterations): each authentication costs a PBKDF2 run until the relying party's first success replaces it; \`aa-oidc app rotate-secret ${app.clientId}\` ends it now`;
}

function secretNotice(clientId: string): string {
  return `  store it now: it will not be shown again (\`aa-oidc app rotate-secret ${clientId}\` makes a new one)`;
}

export function renderOne(application: Application, format: OutputFormat): string {
  switch (format) {
    case 'json':
      return jsonDocument(applicationJson(application));
    case 'csv':
      return renderRows([application], ALL_COLUMNS, 'csv', applicationJson);
    case 'table':
      return describeApplication(application);
    default:
      return assertNever(format);
  }
}

export function renderCreated(
  application: Application,
  clientSecret: string | null,
  format: OutputFormat,
  dryRun: boolean,
): string {
  switch (format) {
    case 'json':
      return jsonDocument({
        client_id: application.clientId,
        client_secret: clientSecret,
        ...(dryRun ? { dry_run: true } : {}),
        ...applicationJson(application),
      });
    case 'csv':
      return renderRows(
        [application],
        [{ header: 'client_secret', value: () => clientSecret }, ...ALL_COLUMNS],
        'csv',
        applicationJson,
      );
    case 'table': {
      const lines = [
        dryRun
          ? `dry run, nothing written: application ${JSON.stringify(application.name)} is valid and would be created`
          : `created application ${JSON.stringify(application.name)}`,
        `client_id:     ${application.clientId}`,
      ];
      if (application.clientType === 'public')
        lines.push('client_type:   public (no client secret; PKCE is always required)');
      else if (clientSecret !== null)
        lines.push(`client_secret: ${clientSecret}`, secretNotice(application.clientId));
      else lines.push('client_secret: (generated on creation, not in a dry run)');
      return textLines(lines);
    }
    default:
      return assertNever(format);
  }
}

export function renderRotated(clientId: string, clientSecret: string | null, format: OutputFormat): string {
  switch (format) {
    case 'json':
      return jsonDocument({
        client_id: clientId,
        client_secret: clientSecret,
        ...(clientSecret === null ? { dry_run: true } : {}),
      });
    case 'csv':
      return renderRows(
        [clientId],
        [
          { header: 'client_id', value: (id) => id },
          { header: 'client_secret', value: () => clientSecret },
        ],
        'csv',
        (id) => id,
      );
    case 'table':
      return textLines(
        clientSecret === null
          ? [
              `dry run, nothing written: the secret of ${clientId} would be replaced; the current one keeps working`,
            ]
          : [
              `new client_secret for ${clientId}: ${clientSecret}`,
              secretNotice(clientId),
              '  the previous secret no longer works',
            ],
      );
    default:
      return assertNever(format);
  }
}
