import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Listens on `port`/`host`. The usual start failures become one actionable line (what `npm start`
 * prints; the error has `listenError: true` and the original as `cause`); anything else is
 * passed on as it is.
 */
export async function listenOn(httpServer: Server, port: number, host: string): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const advice: Record<string, string> = {
        EADDRINUSE: `port ${port} is already in use (EADDRINUSE): stop the other process or set PORT`,
        EACCES: `port ${port} needs privileges this process lacks (EACCES): use a port above 1023 or set PORT`,
        EADDRNOTAVAIL: `HOST ${host} is not an address of this machine (EADDRNOTAVAIL): set HOST`,
        ENOTFOUND: `HOST ${host} does not resolve (ENOTFOUND): set HOST`,
      };
      const line = error.code !== undefined && Object.hasOwn(advice, error.code) ? advice[error.code] : undefined;
      reject(line ? Object.assign(new Error(line, { cause: error }), { code: error.code, listenError: true }) : error);
    };
    httpServer.once('error', failed);
    httpServer.listen(port, host, () => {
      httpServer.off('error', failed);
      resolve();
    });
  });
  return httpServer.address() as AddressInfo;
}
