import type { Kysely } from 'kysely';
import type { ApplicationService } from '../applications/types.ts';
import type { AuditStore } from '../audit/store.ts';
import type { Config } from '../config/load.ts';
import type { ConsoleRequest } from '../console/http.ts';
import type { DatabaseKind } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import type { DirectoryAdmin } from '../directory/builtin/types.ts';
import type { Directory } from '../directory/port.ts';
import type { TwoFactorService } from '../two-factor/service.ts';
import { html, type Html } from '../http/pages/layout.ts';
import type { KeyService } from '../keys/service.ts';
import type { KeyStore } from '../keys/types.ts';
import type { Logger } from '../logging/logger.ts';
import type { LogoutService } from '../logout/service.ts';
import type { TokenRevocationService } from '../tokens/revocation.ts';

/**
 * What the admin UI works with: the same services as the CLI (every write goes through them), and the
 * database for read-only listings.
 */
export interface AdminDependencies {
  config: Config;
  applications: ApplicationService;
  directory: Directory;
  /**
   * The built-in directory's admin interface: every directory write, and user counts by state. Absent
   * for a read-only directory (Alliance Auth): the directory pages then show what the port reads and
   * offer no change.
   */
  directoryAdmin?: DirectoryAdmin;
  keys: KeyService;
  /** This instance's key store: reloaded right after a key change made here. */
  keyStore: Pick<KeyStore, 'reload'>;
  logout: Pick<LogoutService, 'testDelivery'>;
  tokens: TokenRevocationService;
  /** Two-factor sign-in is aa-oidc's own, whichever the directory: shown and reset on a user's page. */
  twoFactor: Pick<TwoFactorService, 'status' | 'reset'>;
  auditStore: AuditStore;
  db: Kysely<Database>;
  dbKind: DatabaseKind;
  /** Where a page logs what it cannot show the admin (a request's own logger when it has one). */
  logger: Logger;
}

/** The admin sections, in the order of the admin navigation. */
export const ADMIN_SECTIONS = [
  ['/admin', 'Dashboard'],
  ['/admin/apps', 'Applications'],
  ['/admin/users', 'Users'],
  ['/admin/states', 'States'],
  ['/admin/groups', 'Groups'],
  ['/admin/keys', 'Signing keys'],
  ['/admin/deliveries', 'Back-channel deliveries'],
  ['/admin/code-reuse', 'Code reuse'],
  ['/admin/audit', 'Audit log'],
] as const;

export type AdminSection = (typeof ADMIN_SECTIONS)[number][0];

/** Who made a change, as the audit log records it. */
export function adminActor(request: ConsoleRequest): string {
  return `admin:${request.visitor!.username}`;
}

/** Renders an admin page: the admin navigation, then the page. */
export function renderAdmin(
  request: ConsoleRequest,
  section: AdminSection,
  title: string,
  body: Html,
  options: { status?: number } = {},
): void {
  request.render(
    title,
    html`<nav aria-label="Administration" class="admin-nav">
        <ul>
          ${ADMIN_SECTIONS.map(
            ([path, name]) =>
              html`<li>
                <a href="${path}" ${path === section ? html`aria-current="page"` : ''}>${name}</a>
              </li>`,
          )}
        </ul>
      </nav>
      ${body}`,
    options,
  );
}
