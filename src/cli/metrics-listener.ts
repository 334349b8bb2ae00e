import type { RequestListener } from 'node:http';
import { type Config, settingName } from '../config/load.ts';
import { createHttpServer, type HttpServerLimits } from '../http/server-limits.ts';
import type { Logger } from '../logging/logger.ts';
import { type MetricsListener, startMetricsListener } from '../metrics/http.ts';
import type { Metrics } from '../metrics/registry.ts';
import { CliError } from './context.ts';

/**
 * A worker's metrics port when `metrics.port` is not set: `serve`'s default (9464) plus one, so that
 * a worker beside a `serve` on the same host starts with neither setting its port (a worker unit
 * installed before workers had metrics, a development machine); on one port, whichever started
 * second would refuse, `serve` too.
 */
export const WORKER_METRICS_PORT = 9465;

/**
 * The metrics listener of a long-running command (`serve`, `worker`) on `metrics.host`:`metrics.port`
 * (or `defaultPort` when `metrics.port` is not set), or none with `metrics.enabled` false. A port it
 * cannot bind stops the start with one line naming the setting to change.
 *
 * It holds its clients as the main port does (createHttpServer: the request deadlines and the
 * `http.*` connection caps, which `limits` narrows in tests): with Node's defaults, a client that
 * trickled its headers would hold a connection for a minute, its body for five, and any number of
 * them, where `metrics.host` is not loopback (W007).
 */
export async function startCommandMetricsListener(
  metrics: Pick<Metrics, 'registry'>,
  config: Pick<Config, 'metrics' | 'origins' | 'trustProxy' | 'trustedProxies' | 'http'>,
  logger: Logger,
  options: { defaultPort?: number; limits?: Partial<HttpServerLimits> } = {},
): Promise<MetricsListener | undefined> {
  if (!config.metrics.enabled) return undefined;
  const port =
    options.defaultPort !== undefined && config.origins['metrics.port'] === undefined
      ? options.defaultPort
      : config.metrics.port;
  const { host } = config.metrics;
  const createServer = (handler: RequestListener) => createHttpServer(handler, config, options.limits);
  return startMetricsListener(metrics, { host, port, createServer }, logger).catch((error: unknown) => {
    throw metricsListenFailure(error, `${host}:${port}`, config);
  });
}

function metricsListenFailure(error: unknown, address: string, config: Pick<Config, 'origins'>): CliError {
  const where = `the metrics listener cannot bind ${address}`;
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
