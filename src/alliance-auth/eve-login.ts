import type { MessageParts } from '../directory/authenticator.ts';
import { assertNever } from '../util/assert-never.ts';
import type { EveIdentity } from './eve-sso.ts';
import type { CharacterOwnership } from './sign-in-queries.ts';

/**
 * Whether an EVE SSO sign-in may proceed: exactly where Alliance Auth itself would log the user in
 * without writing anything (AA's `StateBackend.authenticate` and `sso_login`). Every other case is
 * one where AA would create a user, record a new owner or ask for a main character: the person is
 * sent to Alliance Auth, and nothing is created here.
 */
export type EveSignInDecision =
  { outcome: 'accept'; userId: number } | { outcome: 'refer'; reason: EveReferralReason };

export type EveReferralReason =
  /** AA has never seen this character. */
  | 'unknown_character'
  /** AA knows the character, but no user owns it. */
  | 'no_ownership'
  /** The owner hash changed (the character was transferred): AA would start a new user. */
  | 'owner_changed'
  /** The character is an alt: AA logs in with the main character only. */
  | 'not_main'
  /** The owner has no main character yet. */
  | 'no_main'
  /** The owner is inactive: registration unfinished or disabled by an administrator. */
  | 'inactive';

export function decideEveSignIn(identity: EveIdentity, record: CharacterOwnership): EveSignInDecision {
  if (!record.characterKnown) return { outcome: 'refer', reason: 'unknown_character' };
  const ownership = record.ownership;
  if (!ownership) return { outcome: 'refer', reason: 'no_ownership' };
  if (ownership.ownerHash !== identity.ownerHash) return { outcome: 'refer', reason: 'owner_changed' };
  if (ownership.mainCharacterId === null) return { outcome: 'refer', reason: 'no_main' };
  if (ownership.mainCharacterId !== identity.characterId) return { outcome: 'refer', reason: 'not_main' };
  if (!ownership.userActive) return { outcome: 'refer', reason: 'inactive' };
  return { outcome: 'accept', userId: ownership.userId };
}

/** What the referral page tells the person, who proved they own the character; the name a part of its own. */
export function referralMessage(reason: EveReferralReason, characterName: string): MessageParts {
  switch (reason) {
    case 'unknown_character':
    case 'no_ownership':
      return [
        characterName,
        ' is not registered with Alliance Auth yet. Register it on Alliance Auth, then sign in again.',
      ];
    case 'owner_changed':
      return [
        characterName,
        ' changed hands since Alliance Auth last saw it. Sign in on Alliance Auth first to register the new owner, then sign in again.',
      ];
    case 'not_main':
      return [
        characterName,
        ' is not your main character. Sign in with your main character, or choose ',
        characterName,
        ' as your main on Alliance Auth.',
      ];
    case 'no_main':
      return ['Your account has no main character yet. Choose one on Alliance Auth, then sign in with it.'];
    case 'inactive':
      return [
        'Your Alliance Auth account is not active. Finish your registration on Alliance Auth, or ask an administrator.',
      ];
    default:
      return assertNever(reason);
  }
}
