import type { UserRow } from '../../db/schema.ts';
import { invalid } from '../errors.ts';
import { flag } from './records.ts';
import type { UserChanges, UserField } from './types.ts';
import { MAIN_CHARACTER_FIELDS, quote, validateEmail, validateFlag, validateLocale } from './validation.ts';

/** The fields of a user that `updateUser` changes, and their validation into column values. */

const USER_FIELDS: readonly UserField[] = [
  'email',
  'emailVerified',
  'superuser',
  'oidcAccess',
  'locale',
  ...MAIN_CHARACTER_FIELDS.map((entry) => entry.field),
];

export const MAIN_CHARACTER_FIELD_NAMES: ReadonlySet<UserField> = new Set(
  MAIN_CHARACTER_FIELDS.map((entry) => entry.field),
);

export const COLUMN_OF: Record<UserField, keyof UserRow> = {
  email: 'email',
  emailVerified: 'email_verified',
  superuser: 'superuser',
  oidcAccess: 'oidc_access',
  locale: 'locale',
  ...Object.fromEntries(MAIN_CHARACTER_FIELDS.map((entry) => [entry.field, entry.column])),
} as Record<UserField, keyof UserRow>;

/** Validates `changes` into column values; unknown keys are refused, naming the valid ones. */
export function validateChanges(changes: UserChanges): Map<UserField, unknown> {
  if (typeof changes !== 'object' || changes === null) throw invalid('user changes must be an object');
  const valid = new Map<UserField, unknown>();
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    if (!(USER_FIELDS as readonly string[]).includes(key)) {
      throw invalid(`unknown user field ${quote(key)}; valid fields: ${USER_FIELDS.join(', ')}`);
    }
    const field = key as UserField;
    switch (field) {
      case 'email':
        valid.set(field, validateEmail(value));
        break;
      case 'emailVerified':
      case 'superuser':
      case 'oidcAccess':
        valid.set(field, flag(validateFlag(field, value)));
        break;
      case 'locale':
        valid.set(field, validateLocale(value));
        break;
      default: {
        const entry = MAIN_CHARACTER_FIELDS.find((candidate) => candidate.field === field)!;
        valid.set(field, entry.validate(value));
      }
    }
  }
  return valid;
}
