import { describe, expect, it } from 'vitest';
import { RoomRegistry } from './room-registry.ts';

function registryWithEvents() {
  let now = 1000;
  const registry = new RoomRegistry(() => now);
  const events: string[] = [];
  registry.events.on('roomCreated', ({ roomId }) => events.push(`created ${roomId}`));
  registry.events.on('roomDeleted', ({ roomId }) => events.push(`deleted ${roomId}`));
  registry.events.on('userJoined', ({ roomId, userId }) => events.push(`joined ${roomId} ${userId}`));
  registry.events.on('userLeft', ({ roomId, userId }) => events.push(`left ${roomId} ${userId}`));
  return { registry, events, tick: (ms: number) => (now += ms) };
}

describe('RoomRegistry', () => {
  it('keeps rooms, connections and users in sync and deletes an empty room at once', () => {
    const { registry, events } = registryWithEvents();
    registry.connect('c1', { userId: 'alice', name: 'Alice' });
    registry.connect('c2', { userId: 'bob' });
    expect(registry.join('c1', 'r1')).toEqual({ roomCreated: true, userJoined: true, connectionJoined: true });
    expect(registry.join('c2', 'r1')).toEqual({ roomCreated: false, userJoined: true, connectionJoined: true });
    expect([...registry.roomConnections('r1')]).toEqual(['c1', 'c2']);
    expect(registry.connectionRooms('c1')).toEqual(['r1']);
    expect(registry.snapshot('r1')?.members.map((m) => [m.userId, m.name, m.connections])).toEqual([
      ['alice', 'Alice', 1],
      ['bob', undefined, 1],
    ]);
    expect(registry.leave('c1', 'r1')).toEqual({ roomId: 'r1', userId: 'alice', userLeft: true, roomDeleted: false });
    expect(registry.leave('c2', 'r1')).toEqual({ roomId: 'r1', userId: 'bob', userLeft: true, roomDeleted: true });
    expect(registry.hasRoom('r1')).toBe(false);
    expect(events).toEqual(['created r1', 'joined r1 alice', 'joined r1 bob', 'left r1 alice', 'left r1 bob', 'deleted r1']);
  });

  it('counts a user with several connections as one member', () => {
    const { registry, events } = registryWithEvents();
    registry.connect('tab1', { userId: 'alice' });
    registry.connect('tab2', { userId: 'alice' });
    registry.join('tab1', 'r1');
    expect(registry.join('tab2', 'r1').userJoined).toBe(false);
    expect(registry.snapshot('r1')?.members).toHaveLength(1);
    expect(registry.snapshot('r1')?.members[0]?.connections).toBe(2);
    expect(registry.leave('tab1', 'r1')?.userLeft).toBe(false);
    expect(registry.disconnect('tab2')).toEqual([{ roomId: 'r1', userId: 'alice', userLeft: true, roomDeleted: true }]);
    expect(events.filter((e) => e.startsWith('joined'))).toHaveLength(1);
  });

  it('needs as many leaves as joins from one connection (two subscriptions on one socket)', () => {
    const { registry } = registryWithEvents();
    registry.connect('c1', { userId: 'alice' });
    registry.join('c1', 'r1');
    expect(registry.join('c1', 'r1')).toEqual({ roomCreated: false, userJoined: false, connectionJoined: false });
    expect(registry.leave('c1', 'r1')).toMatchObject({ userLeft: false, roomDeleted: false });
    expect(registry.hasRoom('r1')).toBe(true);
    expect(registry.leave('c1', 'r1')).toMatchObject({ userLeft: true, roomDeleted: true });
    expect(registry.leave('c1', 'r1')).toBeNull();
  });

  it('EC-3: one user in 50 rooms leaves all, and nothing is left behind', () => {
    const { registry } = registryWithEvents();
    registry.connect('c1', { userId: 'alice' });
    for (let i = 0; i < 50; i += 1) registry.join('c1', `room-${i}`);
    expect(registry.userRooms('alice')).toHaveLength(50);
    const left = registry.leaveAll('c1');
    expect(left).toHaveLength(50);
    expect(left.every((l) => l.userLeft && l.roomDeleted)).toBe(true);
    expect(registry.counts()).toEqual({ rooms: 0, connections: 1, users: 1 });
    registry.disconnect('c1');
    expect(registry.counts()).toEqual({ rooms: 0, connections: 0, users: 0 });
  });

  it('records activity with the injected clock', () => {
    const { registry, tick } = registryWithEvents();
    registry.connect('c1', { userId: 'alice' });
    registry.join('c1', 'r1');
    tick(500);
    registry.recordActivity('r1');
    registry.recordActivity('nowhere'); // a room without members is not created by activity
    const snap = registry.snapshot('r1')!;
    expect(snap.lastActivityAt.getTime() - snap.createdAt.getTime()).toBe(500);
    expect(snap.messagesBroadcast).toBe(1);
    expect(registry.hasRoom('nowhere')).toBe(false);
  });

  it('refuses to join an unknown connection and to register one twice', () => {
    const { registry } = registryWithEvents();
    expect(() => registry.join('ghost', 'r1')).toThrow(/not registered/);
    registry.connect('c1', { userId: 'alice' });
    expect(() => registry.connect('c1', { userId: 'alice' })).toThrow(/already registered/);
  });

  it('10,000 join/leave cycles leave no rooms or listeners behind', () => {
    const { registry } = registryWithEvents();
    const listenersBefore = registry.events.count();
    for (let i = 0; i < 10_000; i += 1) {
      const conn = `c${i % 7}`;
      if (!registry.connectionUser(conn)) registry.connect(conn, { userId: `u${i % 3}` });
      registry.join(conn, `r${i % 11}`);
      registry.leave(conn, `r${i % 11}`);
    }
    for (let i = 0; i < 7; i += 1) registry.disconnect(`c${i}`);
    expect(registry.counts()).toEqual({ rooms: 0, connections: 0, users: 0 });
    expect(registry.events.count()).toBe(listenersBefore);
  });
});
