import { describe, expect, it } from 'vitest';
import { createAdminClient } from '../../clients/admin/index.ts';
import { createChatClient, type ChatClient, type SendResult } from '../../clients/chat/index.ts';
import { keysUnder, sleep } from '../support/chaos.ts';
import { deleteKeys, describeWithRedis, REDIS_URL, startCluster, uniquePrefix, type ClusterNode } from '../support/cluster.ts';
import { startTestApp } from '../support/start-test-app.ts';
import { bodies, dropConnections, joinLogged, recordRaw, syncMarker, waitUntil } from '../support/wait.ts';

/**
 * Issue #6 (hardening): what the chaos tests (test/chaos.test.ts) found, each shown alone and
 * deterministically. The plain `it`s failed before the fixes of 7a56643 and guard them now. The
 * `it.fails` pass while their bug is there; once it is fixed they fail, and `.fails` should go.
 */
describe('issue #6: found by the chaos tests', () => {
  it('chat client: an ack re-send reaching a reloaded client that resumed after the message is acked, not shown again', async () => {
    // Was (seen in the one-node run as "user-066: got sender-1#3 (…245, incarnation 1) again"
    // right after "event …245 after …265"): a page closed with its ack still unsent, the
    // reloaded page resumed after the message (lastEventId), and the server's ack re-send — the
    // same event id, on purpose — reached the new client, whose de-duplication only knew the ids
    // it had seen itself, so its application saw the old message again.
    await using t = await startTestApp({ ackTimeoutMs: 3000, ackRetryMs: 100, presenceGraceMs: 2000 });
    const alice = await t.client('alice');
    const a = alice.join('reload');
    await a.started;
    // bob's first page gets the message; autoAck off stands for the ack that never left it.
    const first = joinLogged(await t.client('bob', { autoAck: false }), 'reload');
    await first.conversation.started;
    const got = first.conversation.next('message');
    const { messageId } = await alice.send('reload', 'ack me', { ack: true });
    await got;
    const lastEventId = first.conversation.lastEventId!;
    // The reload: a new client resuming right after that message (bob stays expected: grace).
    const second = joinLogged(await t.client('bob'), 'reload', { lastEventId });
    await second.conversation.started;
    const report = await a.next('message_delivered', (e) => e.report.messageId === messageId, 3000);
    expect(report.report.status).toBe('delivered'); // the new page acked the re-send
    expect(second.log.map((e) => e.id)).toEqual([]); // without showing the old message again
  });

  it('stock client: an ack re-send does not move its resume point back, so the next reconnect replays nothing it already had (issue #10)', async () => {
    // Seen in the one-node run as "user-008: event …484 (user_joined, incarnation 1) after …492
    // (message, incarnation 1)": the tRPC client sets its lastEventId from every data frame
    // (wsLink: `request.message.params.lastEventId = message.result.id`), and a re-send carries
    // the old id on purpose. After a drop it resumes from there: every later event comes again
    // (and if that id has left HISTORY_SIZE meanwhile, a needless `resync`). The chat client now
    // hides what reaches its application (its `seen` ids, the replay skips the user's own
    // presence events), but on the wire a stock client gets duplicates the README says it won't.
    await using t = await startTestApp({ ackTimeoutMs: 5000, ackRetryMs: 100, presenceGraceMs: 5000 });
    const alice = await t.client('alice');
    await alice.join('back').started;
    const bob = await t.client('bob', { autoAck: false }); // never acks: the re-sends keep coming
    const raw = recordRaw(bob, 'back');
    await raw.started();
    await alice.send('back', 'ack me', { ack: true });
    await alice.send('back', 'm2');
    await alice.send('back', 'm3');
    const m3 = raw.events.length;
    await raw.until((e) => e.event.type === 'message' && e.event.message.body === 'm3');
    await raw.until((e) => e.event.type === 'message' && e.event.message.body === 'ack me', { from: m3 }); // a re-send, last
    await dropConnections(t, 'bob');
    const resumedAt = raw.events.length;
    await raw.started(2);
    await alice.send('back', 'm4');
    await raw.until((e) => e.event.type === 'message' && e.event.message.body === 'm4', { from: resumedAt });
    // After the resume only m4 is new (re-sends of "ack me" aside).
    expect(bodies(raw.events.slice(resumedAt)).filter((b) => b !== 'ack me')).toEqual(['m4']);
  });

  it('chat client: a catch-up of more than 50 acknowledged messages gets every ack counted', async () => {
    // Was (seen in the cluster run as "user-092's ack was refused although expected
    // (BAD_REQUEST: Batch call exceeds maximum size)" for three messages at once): the client
    // caught up on a replay of many acknowledged messages, acked each as it arrived, and the
    // stock wsLink put every request of that tick into one frame; the server (maxBatchSize 50)
    // refused such a frame entirely, so none of those acks counted.
    await using t = await startTestApp({ ackTimeoutMs: 10_000, ackRetryMs: 0, presenceGraceMs: 10_000 });
    const alice = await t.client('alice');
    await alice.join('catch-up').started;
    const first = joinLogged(await t.client('bob'), 'catch-up');
    await first.conversation.started;
    await syncMarker(t, 'catch-up', first.conversation);
    const lastEventId = first.conversation.lastEventId!;
    await dropConnections(t, 'bob', 'kicked'); // gone (terminal), but expected: inside its grace
    const sends: SendResult[] = [];
    for (let i = 0; i < 60; i += 1) sends.push(await alice.send('catch-up', `m${i}`, { ack: true }));
    expect(sends.every((s) => s.expected?.includes('bob'))).toBe(true);
    // bob comes back and catches up on all 60 in one replay, acking each.
    const second = joinLogged(await t.client('bob'), 'catch-up', { lastEventId });
    await waitUntil(() => bodies(second.log).length === 60, { what: 'the catch-up' });
    await expect.poll(() => sends.filter((s) => t.app.service.acks.status(s.messageId)?.report.status !== 'delivered').length, { timeout: 3000 }).toBe(0);
  });
});

describeWithRedis('issue #6: found by the chaos tests (cluster)', () => {
  it('cluster: the ack that completes a message on its owner node leaves no `{ack:id}:acked` set behind', async () => {
    // Was: ClusterAckRouter.ack, local path: tracker.ack() completed the message, whose report
    // write (MULTI … DEL {ack:id}:acked …) was queued at once; the fire-and-forget SADD of the
    // same ack was queued after it and re-created the set — and track()'s PEXPIRE on the set ran
    // when it did not exist yet, so nothing ever expired it. One key per such message, forever.
    const prefix = uniquePrefix('acked-leak');
    try {
      await using t = await startTestApp({ env: { LOG_LEVEL: 'silent', REDIS_URL, REDIS_KEY_PREFIX: prefix } });
      const alice = await t.client('alice');
      const bob = await t.client('bob');
      const a = alice.join('leak');
      await Promise.all([a.started, bob.join('leak').started]);
      const report = a.next('message_delivered', undefined, 5000);
      await alice.send('leak', 'ack me', { ack: true });
      expect((await report).report.status).toBe('delivered');
      await sleep(300); // the SADD goes out right after the report
      const forever = (await keysUnder(REDIS_URL, prefix)).filter((k) => k.key.startsWith('{ack:') && k.pttl === -1);
      expect(forever.map((k) => k.key)).toEqual([]);
    } finally {
      await deleteKeys(REDIS_URL, prefix);
    }
  });

  it('cluster: a node taken for dead while stalled past a deadline does not report again what its adopter reported', async () => {
    // Was (seen in the cluster run as "sender-0#3: 2 message_delivered events to its sender"
    // and a deliveryStatus that differed from the first report): n1 stalled over a second on the
    // busy machine, n3 took it for dead and adopted its 7 pending acks (reporting those whose
    // deadline had passed), n1 woke up, its overdue ack timers fired at once and reported them as
    // well; only then did its heartbeat learn it had been reaped and yield the rest ("yielded":
    // 5). With the first ownership check (FINALIZE_SCRIPT, 7a56643) still so: the adopter had
    // finalized first and deleted the record, and a missing record counted as "mine". Here the
    // stall is a SIGSTOP across the message's deadline.
    await using cluster = await startCluster({
      nodes: 2,
      label: 'stall',
      env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000', ACK_RETRY_MS: '0', PRESENCE_GRACE_MS: '5000' },
      startTimeoutMs: 40_000,
    });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    const clients: ChatClient[] = [];
    await using _clients = { [Symbol.asyncDispose]: () => Promise.allSettled(clients.map((c) => c.close())).then(() => undefined) };
    const client = async (node: ClusterNode, userId: string, options: { autoAck?: boolean } = {}) => {
      const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId), retryDelayMs: () => 20, ...options });
      clients.push(c);
      return c;
    };
    const alice = await client(n1, 'alice'); // sends: n1 owns the message
    const aliceTab = joinLogged(await client(n2, 'alice'), 'stall'); // sees the reports from n2
    await Promise.all([alice.join('stall').started, aliceTab.conversation.started]);
    await (await client(n2, 'mute', { autoAck: false })).join('stall').started; // never acks
    const { messageId } = await alice.send('stall', 'ack me', { ack: { timeoutMs: 1500 } });

    const reports = () => aliceTab.log.filter((e) => e.event.type === 'message_delivered' && e.event.report.messageId === messageId);
    process.kill(n1.pid, 'SIGSTOP');
    try {
      // n2 takes n1 for dead, adopts the message and reports it at its deadline.
      await waitUntil(() => reports().length === 1, { timeoutMs: 10_000, what: 'the adopter’s report' });
      await sleep(300);
    } finally {
      process.kill(n1.pid, 'SIGCONT');
    }
    // n1 wakes up past the deadline. A marker published after its wake-up arrives after any
    // report n1 makes at once.
    await sleep(1000);
    const marker = aliceTab.conversation.next('system', (e) => e.event === 'after-wake', 5000);
    await createAdminClient({ url: n1.baseUrl, token: await cluster.token('ops', { role: 'admin' }) }).broadcastSystemEvent({ conversationId: 'stall', event: 'after-wake' });
    await marker;
    expect(reports()).toHaveLength(1);
  }, 60_000);

  it('cluster: a node whose last room subscription ended still hears node-to-node messages (acks it owns count)', async () => {
    // Was: seen in the cluster run as admin `stats` taking 2 s once the clients had left ("node
    // … did not answer admin.stats within 2000 ms"), the other node's figures left out. The
    // node's one `sub` connection held SUBSCRIBE node:<id> (cluster-node.ts) and the rooms'
    // SSUBSCRIBEs (redis-broker.ts). Redis answers SUNSUBSCRIBE with the number of *shard*
    // channels left; at 0 ioredis (DataHandler.handleSubscriberReply) left subscriber mode
    // although node:<id> was still subscribed, and from then on dropped what arrived there:
    // acks for the messages this node owns, admin calls, kicks.
    await using cluster = await startCluster({ nodes: 2, label: 'sub-mode', env: { CLUSTER_HEARTBEAT_MS: '100', ACK_RETRY_MS: '0' }, startTimeoutMs: 40_000 });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    const clients: ChatClient[] = [];
    await using _clients = { [Symbol.asyncDispose]: () => Promise.allSettled(clients.map((c) => c.close())).then(() => undefined) };
    const client = async (node: ClusterNode, userId: string) => {
      const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId), retryDelayMs: () => 20 });
      clients.push(c);
      return c;
    };
    const admin = createAdminClient({ url: n2.baseUrl, token: await cluster.token('ops', { role: 'admin' }) });

    // n1 serves one subscription, then loses it: its last SUNSUBSCRIBE leaves 0 shard channels.
    const carol = await client(n1, 'carol');
    await carol.join('elsewhere').started;
    await carol.close();
    await expect.poll(async () => (await admin.nodes()).find((n) => n.nodeId === n1.nodeId)?.rooms, { timeout: 5000 }).toBe(0);
    await sleep(300);

    // bob is in the room on n2; alice sends through n1 without joining, so n1 owns the message.
    const bob = await client(n2, 'bob');
    const b = bob.join('room');
    await b.started;
    const alice = await client(n1, 'alice');
    const got = b.next('message');
    const { messageId, expected } = await alice.send('room', 'ack me', { ack: { timeoutMs: 1500 } });
    expect(expected).toEqual(['bob']);
    await got; // bob acks at once on n2, which records it in Redis and notifies the owner, n1
    // The report is final once the owner has counted the ack — or, if it never hears of it, at
    // the 1.5 s deadline, as failed. Whichever comes first must be delivered.
    await expect.poll(async () => (await alice.deliveryStatus(messageId)).status, { timeout: 10_000, interval: 50 }).not.toBe('pending');
    expect(await alice.deliveryStatus(messageId)).toMatchObject({ status: 'delivered', acked: ['bob'] });
  }, 60_000);
});
