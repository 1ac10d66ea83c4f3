import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { allowMethod, DASHBOARD_CSP, serveStatic } from '../admin/dashboard-routes.ts';
import { devTokens } from '../auth/dev-tokens.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { RouteHandler } from './http-front.ts';

/** The web chat's page is held to the dashboard's policy: its own files, its own origin, nothing inline. */
export const WEB_CHAT_CSP = DASHBOARD_CSP;

const WEB_DIR = new URL('../../clients/web/', import.meta.url);

interface File {
  body: Buffer;
  etag: string;
  contentType: string;
}

const file = (body: Buffer, contentType: string): File => ({ body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });

/**
 * The web chat (clients/web/) at `/chat`: the page, its stylesheet and its script — the typed
 * client and the page bundled for browsers. A built server (`npm run build`) serves the script
 * the build bundled (dist/clients/web/chat.js); from source, esbuild bundles it on the first
 * request (then kept; a build that fails is a 500 and a log line, and the next request tries
 * again). All GET/HEAD only,
 * with the dashboard's strict CSP. Mounted by the server when `config.webChat` (WEB_CHAT;
 * default on outside production only).
 *
 * `/chat/dev-tokens` hands the page the ready-made tokens `npm start` prints, only where it
 * prints them: outside production, on a server that made up its own secret (elsewhere the path
 * is not served at all: 404), and only to a browser on this machine (`isLocalRequest`; 403).
 */
export function webChatRoutes(
  config: Pick<Config, 'production' | 'generatedSecret' | 'authSecret'>,
  log: Logger,
  options: { /** The script to bundle (tests); clients/web/main.ts. */ entryPoint?: () => URL } = {},
): Array<[string, RouteHandler]> {
  const entryPoint = options.entryPoint ?? (() => new URL('main.ts', WEB_DIR));
  const statics = new Map<string, Promise<File>>();
  const readStatic = (name: string, contentType: string) => {
    let pending = statics.get(name);
    if (!pending) {
      pending = readFile(new URL(name, WEB_DIR)).then((body) => file(body, contentType));
      pending.catch(() => statics.delete(name));
      statics.set(name, pending);
    }
    return pending;
  };
  let bundle: Promise<File> | null = null;
  const buildOnce = () => {
    bundle ??= readPrebuilt(options.entryPoint ? null : new URL('chat.js', WEB_DIR), () => buildBundle(entryPoint(), log)).catch((error: unknown) => {
      bundle = null; // a fixed source builds on the next request, without a restart
      throw error;
    });
    return bundle;
  };

  const serve = (load: () => Promise<File>, what: string): RouteHandler => (req, res) => {
    if (!allowMethod(req, res)) return;
    load().then(
      (f) => serveStatic(req, res, f),
      (error: unknown) => {
        log.error({ err: error, path: what }, 'web chat: could not prepare the page');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
        res.end('the web chat could not be built; see the server log\n');
      },
    );
  };

  const routes: Array<[string, RouteHandler]> = [
    ['/chat', serve(() => readStatic('index.html', 'text/html; charset=utf-8'), '/chat')],
    ['/chat/chat.css', serve(() => readStatic('chat.css', 'text/css; charset=utf-8'), '/chat/chat.css')],
    ['/chat/chat.js', serve(buildOnce, '/chat/chat.js')],
    // The page uses absolute asset paths, so a trailing slash just goes home.
    [
      '/chat/',
      (req, res) => {
        if (!allowMethod(req, res)) return;
        res.writeHead(308, { location: '/chat', 'cache-control': 'no-cache' }).end();
      },
    ],
  ];
  if (!config.production && config.generatedSecret) {
    routes.push(['/chat/dev-tokens', (req, res) => serveDevTokens(req, res, config.authSecret, log)]);
  }
  return routes;
}

/**
 * Whether a request comes from this machine and names it: a loopback peer address, and a `Host`
 * of localhost, `*.localhost`, 127.x.x.x or [::1]. A development server listens on 0.0.0.0 by
 * default; the banner's tokens were only ever on its own terminal, and this keeps them off the
 * network — and away from a foreign page that rebinds its DNS name to 127.0.0.1 (its requests
 * carry its own name as Host).
 */
export function isLocalRequest(req: Pick<IncomingMessage, 'headers' | 'socket'>): boolean {
  const peer = req.socket.remoteAddress ?? '';
  const loopbackPeer = peer === '::1' || /^(?:::ffff:)?127\.\d+\.\d+\.\d+$/.test(peer);
  const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
  const localHost = host === 'localhost' || host.endsWith('.localhost') || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  return loopbackPeer && localHost;
}

function serveDevTokens(req: IncomingMessage, res: ServerResponse, secret: string, log: Logger): void {
  if (!allowMethod(req, res)) return;
  if (!isLocalRequest(req)) {
    res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end('the dev tokens are handed out only to this machine (open the chat at http://localhost:<port>/chat), or paste a token\n');
    return;
  }
  devTokens(secret).then(
    (tokens) => {
      const body = Buffer.from(JSON.stringify({ tokens: tokens.map(({ userId, name, role, token }) => ({ userId, name, role, token })) }));
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': body.length,
        'cache-control': 'no-store',
        'content-security-policy': WEB_CHAT_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
    (error: unknown) => {
      log.error({ err: error }, 'web chat: could not mint the dev tokens');
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('could not mint the dev tokens\n');
    },
  );
}

/** The script `npm run build` bundled, if this is a built server; else `fallback()`. */
async function readPrebuilt(path: URL | null, fallback: () => Promise<File>): Promise<File> {
  if (path) {
    try {
      return file(await readFile(path), 'text/javascript; charset=utf-8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return fallback();
}

async function buildBundle(entryPoint: URL, log: Logger): Promise<File> {
  const started = performance.now();
  const contents = await bundleWebChat(entryPoint);
  log.info({ bytes: contents.length, ms: Math.round(performance.now() - started) }, 'web chat: bundle built');
  return file(Buffer.from(contents), 'text/javascript; charset=utf-8');
}

/**
 * clients/web/main.ts and everything it imports (the typed client's browser entry, @trpc/client,
 * superjson) as one minified browser script: for the route above from source, and for
 * `npm run build`. esbuild (a development dependency) is loaded only here, so a server that
 * never bundles the page never loads it.
 */
export async function bundleWebChat(entryPoint: URL = new URL('main.ts', WEB_DIR)): Promise<Uint8Array> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(entryPoint)],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['es2022'],
    minify: true,
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild produced no output');
  return output.contents;
}
