import { createHash, timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { RouteHandler } from './http-front.ts';

/**
 * GET /metrics: behind METRICS_TOKEN when set (compared in constant time); else open when
 * METRICS_PUBLIC (the default outside production); else off — production without either —
 * answering 403 with how to turn it on. Logs once which of the three it is.
 */
export function metricsRoute(registry: Registry, config: Pick<Config, 'metricsToken' | 'metricsPublic'>, log: Logger): RouteHandler {
  const mode = config.metricsToken ? 'token' : config.metricsPublic ? 'public' : 'off';
  const bearer = config.metricsToken ? sha256(`Bearer ${config.metricsToken}`) : null;
  log.info(
    { metrics: mode },
    mode === 'token' ? '/metrics needs Authorization: Bearer <METRICS_TOKEN>' : mode === 'public' ? '/metrics is public (no token)' : '/metrics is off: set METRICS_TOKEN or METRICS_PUBLIC=true',
  );
  return (req, res) => {
    if (mode === 'off') {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end('/metrics is off: set METRICS_TOKEN (then scrape with Authorization: Bearer <token>) or METRICS_PUBLIC=true\n');
      return;
    }
    if (bearer && !timingSafeEqual(sha256(req.headers.authorization ?? ''), bearer)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('metrics token required\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }).end(text),
      (error: unknown) => {
        log.error({ err: error }, 'metrics failed');
        res.writeHead(500).end();
      },
    );
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
