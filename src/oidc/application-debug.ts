import type Koa from 'koa';
import type { KoaContextWithOIDC, Provider } from 'oidc-provider';
import type { Logger } from '../logging/logger.ts';
import { requestLog } from '../logging/request-context.ts';

/**
 * Per-application debug logging: an application with `debug_mode` (`app create|update
 * --debug-mode`, the admin form's "Debug logging") has each step of its requests logged at `info`,
 * whatever the log level otherwise keeps (but `silent`): the provider's event, the route, the request's
 * parameters that are not secrets, the error and its description, the prompt a sign-in stopped at
 * and why, the user. Redacted by construction: the parameters are an allowlist (never a code,
 * verifier, token, secret, state, nonce or hint), and the line goes through the logger's redaction
 * like any other.
 */

/** The client metadata that carries the application's setting (clients.ts). */
export const DEBUG_MODE_METADATA = 'debug_mode';

const EVENTS = [
  'authorization.accepted',
  'authorization.success',
  'authorization.error',
  'interaction.started',
  'interaction.ended',
  'grant.success',
  'grant.error',
  'introspection.error',
  'revocation.error',
  'userinfo.error',
  'end_session.success',
  'end_session.error',
] as const;

/** Request parameters worth seeing when an application misbehaves, none of them a secret. */
const SHOWN_PARAMETERS = [
  'response_type',
  'response_mode',
  'scope',
  'prompt',
  'max_age',
  'acr_values',
  'ui_locales',
  'redirect_uri',
  'post_logout_redirect_uri',
  'grant_type',
  'code_challenge_method',
  'resource',
] as const;

interface ProviderError {
  error?: unknown;
  error_description?: unknown;
}

interface Prompt {
  name?: unknown;
  reasons?: unknown;
}

/**
 * Logs the steps of debugged applications' requests. The provider tells of a code exchange's or a
 * refresh's `grant.success` before its tokens are written (code-exchange.ts): it is logged once they
 * are (`onceTokensStored`), so that a request whose write is refused (then `grant.error`) or fails
 * logs no success.
 */
export function logApplicationDebug(
  provider: Provider,
  log: Logger,
  onceTokensStored: () => Array<() => void> | undefined = () => undefined,
): void {
  // The events' listeners differ in their second argument (an error, a prompt, none): one listener
  // takes them all.
  const on = provider.on.bind(provider) as unknown as (
    event: string,
    listener: (ctx: KoaContextWithOIDC, detail?: ProviderError & Prompt) => void,
  ) => void;
  for (const event of EVENTS) {
    on(event, (ctx, detail) => {
      const oidc = ctx.oidc;
      const client = oidc?.client as Record<string, unknown> | undefined;
      if (client?.[DEBUG_MODE_METADATA] !== true) return;
      const params = (oidc?.params ?? {}) as Record<string, unknown>;
      const shown: Record<string, unknown> = {};
      for (const name of SHOWN_PARAMETERS) {
        const value = params[name];
        if (typeof value === 'string' || typeof value === 'number') shown[name] = value;
      }
      const error = event.endsWith('.error') ? detail : undefined;
      const prompt = event === 'interaction.started' ? detail : undefined;
      const line = {
        app_debug: event,
        client_id: oidc?.client?.clientId,
        route: oidc?.route,
        params: shown,
        ...(oidc?.session?.accountId ? { user_id: oidc.session.accountId } : {}),
        ...(error ? { error: error.error, error_description: error.error_description } : {}),
        ...(prompt ? { prompt: prompt.name, reasons: prompt.reasons } : {}),
      };
      const logLine = () => {
        const logger = requestLog(ctx as unknown as Koa.Context, log);
        // At `info` whatever the level keeps (`warn` on a quiet server), but nothing when it is
        // `silent`: the request's own logger, lowered for this line.
        if (logger.isLevelEnabled('info')) logger.info(line, `application debug: ${event}`);
        else if (logger.level !== 'silent')
          logger.child({}, { level: 'info' }).info(line, `application debug: ${event}`);
      };
      const held = event === 'grant.success' ? onceTokensStored() : undefined;
      if (held) held.push(logLine);
      else logLine();
    });
  }
}
