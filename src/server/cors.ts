import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * CORS for /trpc over HTTP and SSE (TRPC_CORS_ORIGINS): a page on one of the listed origins may
 * call procedures and open event streams on this server from its own origin. Every other origin
 * gets no CORS header, so the browser keeps its answers from the page; requests without `Origin`
 * (servers, CLIs, same-origin GETs) are not affected. The WebSocket needs none of this (browsers
 * do not apply CORS to it; WS_ALLOWED_ORIGINS checks its Origin).
 *
 * No `Access-Control-Allow-Credentials`: the token travels in the Authorization header, never in
 * a cookie, so there is nothing ambient for a foreign page to ride on.
 */

/** What the stock links send: the token, JSON bodies, SSE resume, tRPC's streaming batch. */
const ALLOWED_HEADERS = 'authorization, content-type, last-event-id, trpc-accept';
const ALLOWED_METHODS = 'GET, POST';
/** How long a browser may keep a preflight's answer (seconds). */
const PREFLIGHT_MAX_AGE = '600';

/**
 * Adds CORS headers for `req`'s Origin when it is listed, and answers a preflight itself.
 * Returns true when the request has been answered (a preflight), false when it goes on.
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, allowed: ReadonlySet<string>): boolean {
  const origin = req.headers.origin;
  const listed = origin !== undefined && allowed.has(origin);
  if (allowed.size > 0) varyOnOrigin(res); // answers differ by Origin: caches must key on it
  if (listed) res.setHeader('access-control-allow-origin', origin);
  if (req.method !== 'OPTIONS') return false;

  // A preflight: GET and POST only, the headers above. An origin that is not listed gets a 403
  // without CORS headers (the browser then refuses the real request and never sends it).
  if (!listed) {
    res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(origin === undefined ? 'OPTIONS is a CORS preflight: it needs an Origin\n' : 'this origin is not in TRPC_CORS_ORIGINS\n');
    return true;
  }
  res.writeHead(204, {
    'access-control-allow-methods': ALLOWED_METHODS,
    'access-control-allow-headers': ALLOWED_HEADERS,
    'access-control-max-age': PREFLIGHT_MAX_AGE,
  });
  res.end();
  return true;
}

/**
 * Adds `Origin` to the response's Vary when its head goes out: tRPC sets its own Vary
 * (`trpc-accept, accept`) after this module has run, replacing any set before.
 */
function varyOnOrigin(res: ServerResponse): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    const vary = this.getHeader('vary');
    const list = Array.isArray(vary) ? vary.join(', ') : vary === undefined ? '' : String(vary);
    if (!/(^|,)\s*origin\s*(,|$)/i.test(list)) this.setHeader('vary', list ? `${list}, Origin` : 'Origin');
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
}
