import { createTemplate } from './database.ts';

/**
 * `npm test`'s global setup (node --test-global-setup): one migrated template database for the
 * whole run, which `createTestDatabase({ migrated: true })` copies instead of migrating again.
 */
let dropTemplate: (() => Promise<void>) | undefined;

export async function globalSetup(): Promise<void> {
  dropTemplate = await createTemplate();
}

export async function globalTeardown(): Promise<void> {
  await dropTemplate?.();
}
