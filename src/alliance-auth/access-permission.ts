import { sql } from 'kysely';
import type { AaDb } from './schema.ts';

/**
 * The Python plugin's permission, `allianceauth_oidc.access_oidc`, as the SQL that finds it. It is
 * matched by app label and codename, never by id: ids differ between installations. A user, a group
 * or a state holds it through AA's three permission tables.
 */
export const ACCESS_PERMISSION = { appLabel: 'allianceauth_oidc', codename: 'access_oidc' } as const;

/** `auth_permission.id` of the access permission, as a subquery (no id is assumed). */
export const accessPermissionIds = sql<number>`(select perm.id from auth_permission perm join django_content_type ct on ct.id = perm.content_type_id where ct.app_label = ${ACCESS_PERMISSION.appLabel} and perm.codename = ${ACCESS_PERMISSION.codename})`;

/** Where a permission is held: AA's table for it and the column naming the holder. */
const HOLDERS = {
  user: { table: 'auth_user_user_permissions', column: 'user_id' },
  group: { table: 'auth_group_permissions', column: 'group_id' },
  state: { table: 'authentication_state_permissions', column: 'state_id' },
} as const;

export type PermissionHolder = keyof typeof HOLDERS;

/**
 * True when the user, group or state whose id is in the column `holderId` (e.g. `'u.id'`) holds the
 * access permission directly.
 */
export function holdsAccess(holder: PermissionHolder, holderId: string) {
  const { table, column } = HOLDERS[holder];
  return sql<boolean>`exists (select 1 from ${sql.table(table)} x where x.${sql.ref(column)} = ${sql.ref(holderId)} and x.permission_id in ${accessPermissionIds})`;
}

/** True when the user whose id is in the column `userId` holds the access permission through a group. */
export function holdsAccessThroughGroups(userId: string) {
  return sql<boolean>`exists (select 1 from auth_user_groups m join auth_group_permissions x on x.group_id = m.group_id where m.user_id = ${sql.ref(userId)} and x.permission_id in ${accessPermissionIds})`;
}

/** The ids of every user, group or state holding the access permission directly (for a join). */
export function accessHolders(holder: PermissionHolder) {
  const { table, column } = HOLDERS[holder];
  return sql`(select distinct x.${sql.ref(column)} as holder_id from ${sql.table(table)} x where x.permission_id in ${accessPermissionIds})`;
}

/** True when AA's database holds the plugin's access permission at all. */
export async function accessPermissionExists(db: AaDb): Promise<boolean> {
  const row = await db
    .selectFrom('auth_permission as perm')
    .innerJoin('django_content_type as ct', 'ct.id', 'perm.content_type_id')
    .select('perm.id')
    .where('ct.app_label', '=', ACCESS_PERMISSION.appLabel)
    .where('perm.codename', '=', ACCESS_PERMISSION.codename)
    .executeTakeFirst();
  return row !== undefined;
}

/** How many rows of `table` point at the id in `ref` (a state's profiles, a group's members). */
export function countReferencing(
  table: 'authentication_userprofile' | 'auth_user_groups',
  column: 'state_id' | 'group_id',
  ref: string,
) {
  return sql<number>`(select count(*) from ${sql.table(table)} r where r.${sql.ref(column)} = ${sql.ref(ref)})`;
}
