import { type Kysely, sql } from 'kysely';
import { type MigrationContext, idColumn } from './helpers.ts';

export async function up(db: Kysely<unknown>, { kind }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('state')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('name', 'varchar(150)', (col) => col.notNull().unique())
    .addColumn('priority', 'integer', (col) => col.notNull().unique())
    .addColumn('oidc_access', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute();
  // Names are looked up exactly but unique regardless of case: "Member" and "member" side by side
  // would make whitelists ambiguous.
  await db.schema
    .createIndex('state_name_lower_uq')
    .on('state')
    .unique()
    .expression(sql`lower(name)`)
    .execute();

  await db.schema
    .createTable('auth_group')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('name', 'varchar(150)', (col) => col.notNull().unique())
    .addColumn('oidc_access', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('auth_group_name_lower_uq')
    .on('auth_group')
    .unique()
    .expression(sql`lower(name)`)
    .execute();

  await db.schema
    .createTable('app_user')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('username', 'varchar(150)', (col) => col.notNull().unique())
    .addColumn('email', 'varchar(254)', (col) => col.notNull().defaultTo(''))
    .addColumn('email_verified', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('password_hash', 'text')
    .addColumn('active', 'integer', (col) => col.notNull().defaultTo(1))
    .addColumn('superuser', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('oidc_access', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('state_id', 'integer', (col) => col.references('state.id').onDelete('restrict'))
    .addColumn('character_id', 'bigint')
    .addColumn('character_name', 'varchar(254)')
    .addColumn('corporation_id', 'bigint')
    .addColumn('corporation_name', 'varchar(254)')
    .addColumn('corporation_ticker', 'varchar(10)')
    .addColumn('alliance_id', 'bigint')
    .addColumn('alliance_name', 'varchar(254)')
    .addColumn('alliance_ticker', 'varchar(10)')
    .addColumn('faction_id', 'bigint')
    .addColumn('faction_name', 'varchar(254)')
    .addColumn('locale', 'varchar(35)')
    .addColumn('last_login_at', 'bigint')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('updated_at', 'bigint', (col) => col.notNull())
    .execute();
  // Usernames are unique and looked up regardless of case, so that "Alice" cannot pose as "alice".
  await db.schema
    .createIndex('app_user_username_lower_uq')
    .on('app_user')
    .unique()
    .expression(sql`lower(username)`)
    .execute();
  await db.schema.createIndex('app_user_state_idx').on('app_user').column('state_id').execute();

  await db.schema
    .createTable('user_group')
    .addColumn('user_id', 'integer', (col) => col.notNull().references('app_user.id').onDelete('cascade'))
    .addColumn('group_id', 'integer', (col) => col.notNull().references('auth_group.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('user_group_pk', ['user_id', 'group_id'])
    .execute();
  await db.schema.createIndex('user_group_group_idx').on('user_group').column('group_id').execute();

  await db.schema
    .createTable('lifecycle_event')
    .addColumn('id', 'integer', (col) => idColumn(col, kind))
    .addColumn('kind', 'varchar(64)', (col) => col.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('actor', 'varchar(200)')
    .addColumn('payload', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('lifecycle_event_user_idx').on('lifecycle_event').column('user_id').execute();
}
