import type { Command } from 'commander';
import type { TokenRevocationReason } from '../../audit/events.ts';
import { listTokens, type TokenListing } from '../../tokens/listing.ts';
import {
  InvalidRevocationNoteError,
  storageIdHex,
  UnknownUserError,
  type RevokedToken,
} from '../../tokens/revocation.ts';
import { CliError, type CliIo, cliActor, isoTime, READS_ONLY, withServices } from '../context.ts';
import { filterOption, requiredTextOption, userAndClientFilter } from '../option-values.ts';
import {
  type Column,
  formatOption,
  jsonDocument,
  type OutputFormat,
  renderRows,
  textLines,
} from '../output.ts';

const REVOKED_COLUMNS: readonly Column<RevokedToken>[] = [
  { header: 'token_sha256', value: (token) => storageIdHex(token.id) },
  { header: 'kind', value: (token) => kindOf(token) },
  { header: 'format', value: (token) => token.format ?? '' },
  { header: 'client_id', value: (token) => token.clientId },
];

function kindOf(token: RevokedToken): string {
  switch (token.model) {
    case 'AccessToken':
    case 'ClientCredentials':
      return 'access_token';
    case 'RefreshToken':
      return 'refresh_token';
    case 'AuthorizationCode':
      return 'authorization_code';
  }
}

function revokedJson(token: RevokedToken): Record<string, unknown> {
  return {
    token_sha256: storageIdHex(token.id),
    kind: kindOf(token),
    format: token.format,
    client_id: token.clientId,
  };
}

/** A listed token with the username of its user, as the directory knows it now. */
type AuditedToken = TokenListing & { username: string | null };

const AUDIT_COLUMNS: readonly Column<AuditedToken>[] = [
  { header: 'token_sha256', value: (token) => token.tokenSha256.slice(0, 16) },
  { header: 'type', value: (token) => token.type },
  { header: 'format', value: (token) => token.format },
  { header: 'client_id', value: (token) => token.clientId },
  { header: 'user', value: (token) => token.username ?? (token.userId === null ? '' : String(token.userId)) },
  { header: 'scopes', value: (token) => token.scopes.join(' ') },
  { header: 'expires_at', value: (token) => isoTime(token.expiresAt) },
  { header: 'status', value: (token) => token.status },
  { header: 'revoked_reason', value: (token) => token.revokedReason },
];

function auditJson(token: AuditedToken): Record<string, unknown> {
  return {
    token_sha256: token.tokenSha256,
    type: token.type,
    grant_type: token.grantType,
    format: token.format,
    client_id: token.clientId,
    user_id: token.userId,
    username: token.username,
    scopes: token.scopes,
    issued_at: isoTime(token.issuedAt),
    expires_at: isoTime(token.expiresAt),
    status: token.status,
    revoked: token.status === 'revoked',
    revoked_at: isoTime(token.revokedAt),
    revoked_reason: token.revokedReason,
  };
}

/** `aa-oidc tokens revoke-user|audit`. Token values are never printed, only digests. */
export function registerTokens(program: Command, io: CliIo): void {
  const tokens = program.command('tokens').description('inspect and revoke issued tokens');

  tokens
    .command('revoke-user')
    .description(
      'revoke every code and token of a user and end the user’s browser sessions, in one transaction (audit: token_revoked)',
    )
    .addOption(
      requiredTextOption(
        '--username <username>',
        'the user whose tokens to revoke',
        'the username of the user whose tokens to revoke (see aa-oidc user list)',
      ),
    )
    .option('--reason <text>', 'why (recorded with each token_revoked audit event)')
    .option('--dry-run', 'list what would be revoked, revoke nothing')
    .addOption(formatOption())
    .action(
      async (options: { username: string; reason?: string; dryRun?: boolean; format: OutputFormat }) => {
        const reason: TokenRevocationReason = 'user_revoked';
        const result = await withServices(io, async (services) => {
          try {
            return await services.tokens.revokeUser(options.username, {
              reason,
              ...(options.reason === undefined ? {} : { note: options.reason }),
              dryRun: options.dryRun === true,
              actor: cliActor(io),
            });
          } catch (error) {
            if (error instanceof UnknownUserError || error instanceof InvalidRevocationNoteError)
              throw new CliError(error.message);
            throw error;
          }
        });
        if (options.format !== 'table') {
          if (options.format === 'json') {
            io.stdout.write(
              jsonDocument({
                username: result.username,
                dry_run: result.dryRun,
                revoked: result.revoked.length,
                sessions_ended: result.sessionsEnded,
                tokens: result.revoked.map(revokedJson),
              }),
            );
          } else {
            io.stdout.write(renderRows(result.revoked, REVOKED_COLUMNS, 'csv', revokedJson));
          }
          return;
        }
        const verb = result.dryRun ? 'would revoke' : 'revoked';
        const ended = result.dryRun ? 'would end' : 'ended';
        io.stdout.write(
          textLines([
            `${result.dryRun ? 'dry run: ' : ''}${verb} ${result.revoked.length} code(s) and token(s) of ${result.username} and ${ended} ${result.sessionsEnded} browser session(s)${result.dryRun ? '; nothing changed' : ''}`,
          ]),
        );
        if (result.revoked.length > 0)
          io.stdout.write(renderRows(result.revoked, REVOKED_COLUMNS, 'table', revokedJson));
      },
    );

  tokens
    .command('audit')
    .description('list issued access and refresh tokens (format, client, scopes, expiry, revoked state)')
    .addOption(filterOption('--username <username>', 'only this user’s tokens', 'a username'))
    .addOption(filterOption('--client-id <client_id>', 'only tokens of this application', 'a client_id'))
    .option('--include-expired', 'also list tokens whose lifetime is over')
    .addOption(formatOption())
    .action(
      async (options: {
        username?: string;
        clientId?: string;
        includeExpired?: boolean;
        format: OutputFormat;
      }) => {
        const rows = await withServices(
          io,
          async (services) => {
            const listed = await listTokens(services.database.db, {
              ...(await userAndClientFilter(services, options)),
              includeExpired: options.includeExpired === true,
            });
            const userIds = listed.map((token) => token.userId).filter((id) => id !== null);
            const usernames = new Map(
              (await services.directory.profilesByIds(userIds)).map((profile) => [
                profile.id,
                profile.username,
              ]),
            );
            return listed.map((token): AuditedToken => ({
              ...token,
              username: token.userId === null ? null : (usernames.get(token.userId) ?? null),
            }));
          },
          READS_ONLY,
        );
        io.stdout.write(renderRows(rows, AUDIT_COLUMNS, options.format, auditJson));
      },
    );
}
