import { describe, expect, it } from 'vitest';
import { createChatClient, type ChatClient, type Conversation, type RoomEvent } from '../clients/chat/index.ts';
import { mintToken } from '../src/auth/tokens.ts';
import { startNode } from './support/cluster.ts';
import { TEST_SECRET } from './support/start-test-app.ts';
import { waitUntil } from './support/wait.ts';

/**
 * Issue 13, "presence storms": a room of 1,000 on a real server process (npm start, the default
 * PRESENCE_BATCH_MS of 50) that every member joins within 2 s — what a room sees when its
 * members come back after a deploy (a fresh node: nobody is present, everybody arrives). Before
 * batching each member received one presence event per later arrival: ~1,000 for the first ones,
 * ~500,000 deliveries in all. Now each member may receive at most 50 presence events for the
 * storm, and afterwards every member's presence model (snapshot of 100, pages, single events,
 * diffs) must equal the truth, `conversation.presence`.
 */
describe('a presence storm: 1,000 members join one room within 2 s', () => {
  const MEMBERS = 1000;
  const SPREAD_MS = 2000;
  const PRESENCE = new Set<RoomEvent['type']>(['user_joined', 'user_left', 'user_disconnected', 'presence_diff']);

  it('gives each member at most 50 presence events, and every member the true view afterwards', async () => {
    await using node = await startNode({ nodeId: 'presence-storm', env: { PRESENCE_BATCH_MS: '50', MAX_CONNECTIONS_PER_USER: '2' } });
    const userIds = Array.from({ length: MEMBERS }, (_, i) => `member-${String(i).padStart(4, '0')}`);
    const clients: ChatClient[] = [];
    try {
      // Every member's socket is open before the storm, so the storm is the joins alone.
      for (let i = 0; i < MEMBERS; i += 100) {
        const batch = await Promise.all(userIds.slice(i, i + 100).map(async (userId) => createChatClient({ url: node.wsUrl, token: await mintToken(TEST_SECRET, { userId, conversations: ['*'] }), retryDelayMs: () => 100 })));
        clients.push(...batch);
        // A query opens the socket and proves it is served.
        await Promise.all(batch.map((c) => c.trpc.conversation.mine.query()));
      }

      const presenceEvents = new Array<number>(MEMBERS).fill(0);
      const conversations: Conversation[] = [];
      const started = Date.now();
      const starts: Array<Promise<void>> = [];
      for (let i = 0; i < MEMBERS; i += 1) {
        const due = started + (i * SPREAD_MS) / MEMBERS;
        if (due > Date.now() + 4) await new Promise((r) => setTimeout(r, due - Date.now()));
        const conversation = clients[i]!.join('storm', {
          onEvent: (event) => {
            if (PRESENCE.has(event.type)) presenceEvents[i]! += 1;
          },
        });
        conversations.push(conversation);
        starts.push(conversation.started);
      }
      await Promise.all(starts);
      const joinedMs = Date.now() - started;

      // Every member's application shows its member list now (the model pages in what its
      // snapshot did not list from the first look); then the truth, and every view equal to it.
      for (const c of conversations) void c.presence;
      const reader = clients[0]!;
      await waitUntil(() => conversations.every((c) => c.presence.complete && c.presence.members.size === MEMBERS), { timeoutMs: 30_000, intervalMs: 50, what: 'every member to see all 1,000' });
      const settledMs = Date.now() - started;
      const truth = (await reader.presence('storm')).map((m) => m.userId).sort();
      expect(truth).toEqual(userIds);
      for (const [i, c] of conversations.entries()) {
        const view = c.presence;
        expect(view.memberCount, userIds[i]).toBe(MEMBERS);
        expect([...view.members.keys()].sort(), userIds[i]).toEqual(truth);
      }

      const sorted = [...presenceEvents].sort((a, b) => a - b);
      const total = presenceEvents.reduce((a, b) => a + b, 0);
      process.stderr.write(`presence storm: ${MEMBERS} joins in ${joinedMs} ms; presence events per member median ${sorted[MEMBERS >> 1]}, max ${sorted.at(-1)}; ${total} in all (one event per arrival per member would be ~${(MEMBERS * (MEMBERS - 1)) / 2}); every view complete after ${settledMs} ms\n`);
      expect(sorted.at(-1), 'presence events of the member that received most').toBeLessThanOrEqual(50);
    } finally {
      await Promise.allSettled(clients.map((c) => c.close()));
    }
  }, 60_000);
});
