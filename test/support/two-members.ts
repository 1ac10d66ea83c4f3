import { createChatClient, type ChatClient } from '../../clients/chat/index.ts';
import type { ClusterNode, TestCluster } from './cluster.ts';
import { bodies, joinLogged, waitUntil } from './wait.ts';

/**
 * The outage tests' starting point: alice on the cluster's first node and bob on its second,
 * both in conversation `out` with a log of what they receive, and a first message from bob that
 * alice has received. The clients go into `clients`, which the test closes.
 */
export async function twoMembersOnTwoNodes(cluster: TestCluster, clients: ChatClient[]) {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  const client = async (node: ClusterNode, userId: string) => {
    const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId), retryDelayMs: () => 50 });
    clients.push(c);
    return c;
  };
  const alice = await client(n1, 'alice');
  const bob = await client(n2, 'bob');
  const a = joinLogged(alice, 'out');
  await a.conversation.started;
  const b = joinLogged(bob, 'out');
  await b.conversation.started;
  await bob.send('out', 'before');
  await waitUntil(() => bodies(a.log).includes('before'), { what: 'alice to get the first message' });
  return { n1, n2, alice, bob, a, b };
}
