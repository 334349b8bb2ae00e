/**
 * The largest id a row can have: every id column is a 32-bit integer (aa-oidc's own, and Django's
 * AutoField in Alliance Auth's database). PostgreSQL refuses a larger number compared with one
 * (`value out of range for type integer`) rather than finding nothing.
 */
export const MAX_ROW_ID = 2_147_483_647;

/** True for a number that can be a row's id: a whole number from 1 to `MAX_ROW_ID`. */
export function isRowId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= MAX_ROW_ID;
}
