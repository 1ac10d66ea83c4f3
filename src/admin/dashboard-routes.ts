import type { IncomingMessage, ServerResponse } from 'node:http';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The dashboard's exact paths and their handlers (static files served by the server itself). */
export function dashboardRoutes(): Array<[string, Handler]> {
  return [
    [
      '/dashboard',
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Realtime admin</title><p>Dashboard coming.</p>');
      },
    ],
  ];
}
