import { type Config, settingName } from '../config/load.ts';
import type { Logger } from '../logging/logger.ts';
import { type MetricsListener, startMetricsListener } from '../metrics/http.ts';
import type { Metrics } from '../metrics/registry.ts';
import { CliError } from './context.ts';

/**
 * The metrics listener of a long-running command (`serve`, `worker`) on `metrics.host`:`metrics.port`,
 * or none with `metrics.enabled` false. A port it cannot bind stops the start with one line naming
 * the setting to change: `serve` and a worker on one host both default to 9464.
 */
export async function startCommandMetricsListener(
  metrics: Pick<Metrics, 'registry'>,
  config: Pick<Config, 'metrics' | 'origins'>,
  logger: Logger,
): Promise<MetricsListener | undefined> {
  if (!config.metrics.enabled) return undefined;
  return startMetricsListener(metrics, config.metrics, logger).catch((error: unknown) => {
    throw metricsListenFailure(error, config);
  });
}

function metricsListenFailure(error: unknown, config: Pick<Config, 'metrics' | 'origins'>): CliError {
  const where = `the metrics listener cannot bind ${config.metrics.host}:${config.metrics.port}`;
  const port = settingName(config.origins, 'metrics.port');
  const off = 'AA_OIDC_METRICS_ENABLED=false';
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new CliError(
      `${where}: the port is already in use (by another aa-oidc serve or worker on this host, or another ` +
        `program); give each process a metrics port of its own with ${port}, or turn this listener off with ${off}`,
    );
  return new CliError(`${where} (${code ?? (error as Error).message}); set ${port} to a free port or ${off}`);
}
