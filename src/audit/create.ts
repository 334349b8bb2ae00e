import type { Config } from '../config/load.ts';
import type { Logger } from '../logging/logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import { type AuditBus, type AuditReceiver, createAuditBus } from './bus.ts';
import { jsonlAuditReceiver, logAuditReceiver } from './receivers.ts';

/**
 * The app's audit bus with the built-in receivers: the log always, the JSON-lines sink when
 * configured, and `more` (the database store, src/audit/store.ts).
 */
export function createAudit(
  config: Pick<Config, 'audit'>,
  logger: Logger,
  metrics: Metrics,
  more: readonly AuditReceiver[] = [],
): AuditBus {
  const receivers: AuditReceiver[] = [logAuditReceiver(logger), ...more];
  if (config.audit.jsonlPath !== undefined) receivers.push(jsonlAuditReceiver(config.audit.jsonlPath));
  return createAuditBus({ logger, metrics, receiverTimeoutMs: config.audit.receiverTimeoutMs, receivers });
}
