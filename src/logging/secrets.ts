import { hash } from 'node:crypto';
import type { Config } from '../config/load.ts';

/**
 * Lower-case hex SHA-256 of a UTF-8 string or bytes: how logs and events name a secret. `hash` is the
 * one-shot form of `createHash().update().digest()`, without a Hash object per call (audit events
 * of every introspection and every token issued name their token this way).
 */
export function sha256Hex(value: string | Uint8Array): string {
  return hash('sha256', value, 'hex');
}

/**
 * How a secret (token, code, client secret) may be referred to in a log line or an audit event.
 * Built once from the configuration so that callers never decide on their own whether masking is
 * allowed.
 */
export interface SecretFormatter {
  /** True when `maskSecret()` shows head/tail fragments (development with `logging.maskedSecrets`). */
  readonly masksEnabled: boolean;
  /** `sha256Hex(value)`: stable, correlatable with `token_sha256` in audit events. */
  sha256Hex(value: string | Uint8Array): string;
  /**
   * `abcd…wxyz` (4 + 4 characters) when masks are enabled and the value is at least 20 characters
   * long; otherwise, and always in production, `sha256:<hex>` and nothing of the value itself.
   */
  maskSecret(value: string): string;
}

const MASK_MIN_LENGTH = 20;
const MASK_VISIBLE = 4;

export function createSecretFormatter(config: Pick<Config, 'mode' | 'logging'>): SecretFormatter {
  // Never in production, whatever maskedSecrets says: nothing but a digest leaves (check W001 says
  // the setting is ignored there).
  const masksEnabled = config.logging.maskedSecrets && config.mode === 'development';
  return {
    masksEnabled,
    sha256Hex,
    maskSecret(value) {
      if (masksEnabled && value.length >= MASK_MIN_LENGTH) {
        return `${value.slice(0, MASK_VISIBLE)}…${value.slice(-MASK_VISIBLE)}`;
      }
      return `sha256:${sha256Hex(value)}`;
    },
  };
}
