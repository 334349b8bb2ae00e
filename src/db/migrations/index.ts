import type { Migration } from './helpers.ts';
import * as m0001 from './0001_directory.ts';

/**
 * Every migration, in order. Forward-only: a released migration is never edited, a change is a new
 * entry. Names sort in application order.
 */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_directory': m0001,
};
