import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The page may load only its own files and talk only to its own origin (no inline code at all). */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** URL path → file in ./dashboard/ and its content type. */
const FILES: ReadonlyArray<readonly [string, string, string]> = [
  ['/dashboard', 'index.html', 'text/html; charset=utf-8'],
  ['/dashboard/dashboard.js', 'dashboard.js', 'text/javascript; charset=utf-8'],
  ['/dashboard/chart.js', 'chart.js', 'text/javascript; charset=utf-8'],
  ['/dashboard/dashboard.css', 'dashboard.css', 'text/css; charset=utf-8'],
  ['/dashboard/favicon.svg', 'favicon.svg', 'image/svg+xml'],
];

/**
 * The dashboard's exact paths and their handlers: static files served by the server itself,
 * read once here (at server creation), revalidated by ETag on every load (`no-cache`).
 */
export function dashboardRoutes(): Array<[string, Handler]> {
  const routes: Array<[string, Handler]> = FILES.map(([path, file, contentType]) => {
    const body = readFileSync(new URL(`./dashboard/${file}`, import.meta.url));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    return [path, (req, res) => serveStatic(req, res, { body, etag, contentType })];
  });
  // The page uses absolute asset paths, so a trailing slash just goes home.
  routes.push([
    '/dashboard/',
    (req, res) => {
      if (!allowMethod(req, res)) return;
      res.writeHead(308, { location: '/dashboard', 'cache-control': 'no-cache' }).end();
    },
  ]);
  return routes;
}

/** One in-memory file with the page CSP and an ETag (also used by the web chat's routes, server/web-chat-route.ts). */
export function serveStatic(req: IncomingMessage, res: ServerResponse, file: { body: Buffer; etag: string; contentType: string }): void {
  if (!allowMethod(req, res)) return;
  const headers = {
    'content-type': file.contentType,
    'cache-control': 'no-cache',
    etag: file.etag,
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
  };
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, headers).end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': file.body.length });
  res.end(req.method === 'HEAD' ? undefined : file.body);
}

/** GET and HEAD pass; anything else is answered 405 with `Allow: GET, HEAD`. */
export function allowMethod(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
  return false;
}
