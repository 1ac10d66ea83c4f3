import { describe, expect, it } from 'vitest';
import { startTestApp } from './support/start-test-app.ts';

describe('smoke', () => {
  it('delivers a message from alice to bob, not back to alice', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice', { name: 'Alice' });
    const bob = await t.client('bob');
    const roomA = alice.join('r1');
    await roomA.started;
    // Bob's `started` comes once he counts as present: listen before he joins.
    const bobJoined = roomA.next('user_joined', (e) => e.userId === 'bob');
    const roomB = bob.join('r1');
    await roomB.started;
    await bobJoined;
    const got = roomB.next('message');
    const sent = await alice.send('r1', 'hello');
    const msg = await got;
    expect(msg.message.body).toBe('hello');
    expect(msg.message.senderId).toBe('alice');
    expect(msg.message.senderName).toBe('Alice');
    expect(msg.message.sentAt).toBeInstanceOf(Date);
    expect(roomB.lastEventId).toBe(sent.eventId);
  });
});
