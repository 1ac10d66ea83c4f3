/**
 * Idle subscribers in a process of their own, so that a test's heap figure holds only the
 * server's side of each connection:
 *
 *   node --import tsx test/support/idle-clients.ts <ws url> <count> <per room> <tag>
 *
 * Opens `count` raw-frame tRPC clients (connectionParams, one `conversation.events` subscription
 * each, `per room` to a room, users `<tag>-u<i>`), prints `ready <count>` once every one has its
 * `subscribed` event, answers PINGs, and stays until it is killed. The token secret comes from
 * IDLE_CLIENTS_SECRET.
 */
import superjson from 'superjson';
import { WebSocket } from 'ws';
import { mintToken } from '../../src/auth/tokens.ts';

const [url, countArg, perRoomArg, tag] = process.argv.slice(2);
const secret = process.env.IDLE_CLIENTS_SECRET;
if (!url || !countArg || !perRoomArg || !tag || !secret) throw new Error('usage: idle-clients.ts <ws url> <count> <per room> <tag> (IDLE_CLIENTS_SECRET set)');
const count = Number(countArg);
const perRoom = Number(perRoomArg);

function open(i: number): Promise<WebSocket> {
  return mintToken(secret!, { userId: `${tag}-u${i}`, conversations: ['*'], expiresIn: '1h' }).then(
    (token) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${url}?connectionParams=1`, { perMessageDeflate: false });
        ws.on('open', () => {
          ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
          const input = superjson.serialize({ conversationId: `${tag}-room${Math.floor(i / perRoom)}` });
          ws.send(JSON.stringify({ id: 1, method: 'subscription', params: { input, path: 'conversation.events' } }));
        });
        ws.on('message', (data: Buffer) => {
          const text = String(data);
          if (text === 'PING') ws.send('PONG');
          else if (text.includes('"error"')) reject(new Error(`refused: ${text.slice(0, 200)}`));
          else if (text.includes('"subscribed"')) resolve(ws);
        });
        ws.on('error', reject);
      }),
  );
}

const sockets: WebSocket[] = [];
for (let start = 0; start < count; start += 100) {
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, count - start) }, (_, k) => open(start + k)))));
}
process.stdout.write(`ready ${sockets.length}\n`);
setInterval(() => undefined, 60_000); // stay until killed
