import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RoomRegistry } from './room-registry.ts';

/**
 * Model-based test of the registry (fc.commands + fc.modelRun): any sequence of connect, join,
 * leave, leaveAll, disconnect and reconnect over small pools of connections, users and rooms,
 * valid or not, is run against the registry and against a model that stores only what each
 * connection holds (room → subscription count, in join order). Everything else — rooms, members,
 * connection counts, user indexes, counts(), the results and the lifecycle events of each call —
 * is derived from the model and compared after every step.
 */

const CONNECTIONS = ['c0', 'c1', 'c2', 'c3', 'c4'] as const;
const USERS = ['u0', 'u1', 'u2'] as const;
const ROOMS = ['r0', 'r1', 'r2'] as const;
const NAMES = [undefined, 'Ann', 'Bo'] as const;

interface ModelConnection {
  userId: string;
  name: string | undefined;
  /** Room → subscriptions this connection holds there; Map order is the order of first join. */
  rooms: Map<string, number>;
}

interface ModelMember {
  /** The name of the connection whose join made the user a member. */
  name: string | undefined;
  joinedAt: number;
  connections: Set<string>;
}

interface ModelRoom {
  createdAt: number;
  members: Map<string, ModelMember>;
}

interface Model {
  now: number;
  connections: Map<string, ModelConnection>;
  /** Derived from `connections` except for the timestamps and names, which history decides. */
  rooms: Map<string, ModelRoom>;
}

interface Real {
  registry: RoomRegistry;
  /** Lifecycle events emitted during the current command, in order. */
  events: string[];
  tick: () => void;
  listeners: number;
}

type Cmd = fc.Command<Model, Real>;

function command(label: string, run: (model: Model, real: Real) => void): Cmd {
  return {
    check: () => true,
    run(model, real) {
      real.tick();
      model.now += 1;
      real.events.length = 0;
      run(model, real);
      expectConsistent(model, real);
    },
    toString: () => label,
  };
}

// ---------------------------------------------------------------- model transitions

/** Removes one connection from a room in the model; returns [userLeft, roomDeleted]. */
function modelRemove(model: Model, connectionId: string, roomId: string): [boolean, boolean] {
  const conn = model.connections.get(connectionId)!;
  const room = model.rooms.get(roomId)!;
  const member = room.members.get(conn.userId)!;
  member.connections.delete(connectionId);
  const userLeft = member.connections.size === 0;
  if (userLeft) room.members.delete(conn.userId);
  const roomDeleted = room.members.size === 0;
  if (roomDeleted) model.rooms.delete(roomId);
  return [userLeft, roomDeleted];
}

function leaveEvents(userId: string, roomId: string, [userLeft, roomDeleted]: [boolean, boolean]): string[] {
  return [...(userLeft ? [`userLeft ${roomId} ${userId}`] : []), ...(roomDeleted ? [`roomDeleted ${roomId}`] : [])];
}

/** Disconnect in the model: leave every room in join order; returns the expected results and events. */
function modelDisconnect(model: Model, connectionId: string) {
  const conn = model.connections.get(connectionId);
  if (!conn) return { results: [], events: [] };
  const results: Array<{ roomId: string; userId: string; userLeft: boolean; roomDeleted: boolean }> = [];
  const events: string[] = [];
  for (const roomId of [...conn.rooms.keys()]) {
    const outcome = modelRemove(model, connectionId, roomId);
    results.push({ roomId, userId: conn.userId, userLeft: outcome[0], roomDeleted: outcome[1] });
    events.push(...leaveEvents(conn.userId, roomId, outcome));
  }
  conn.rooms.clear();
  model.connections.delete(connectionId);
  events.push(`connectionRemoved ${connectionId} ${conn.userId}`);
  return { results, events };
}

// ---------------------------------------------------------------- commands

const connectCmd = (connectionId: string, userId: string, name: string | undefined) =>
  command(`connect(${connectionId}, ${userId}, ${name})`, (model, { registry, events }) => {
    const user = { userId, ...(name !== undefined && { name }) };
    if (model.connections.has(connectionId)) {
      expect(() => registry.connect(connectionId, user)).toThrow(/already registered/);
      expect(events).toEqual([]);
      return;
    }
    registry.connect(connectionId, user);
    model.connections.set(connectionId, { userId, name, rooms: new Map() });
    expect(events).toEqual([`connectionAdded ${connectionId} ${userId}`]);
  });

const joinCmd = (connectionId: string, roomId: string) =>
  command(`join(${connectionId}, ${roomId})`, (model, { registry, events }) => {
    const conn = model.connections.get(connectionId);
    if (!conn) {
      expect(() => registry.join(connectionId, roomId)).toThrow(/not registered/);
      expect(events).toEqual([]);
      return;
    }
    const held = conn.rooms.get(roomId) ?? 0;
    const result = registry.join(connectionId, roomId);
    conn.rooms.set(roomId, held + 1);
    if (held > 0) {
      expect(result).toEqual({ roomCreated: false, userJoined: false, connectionJoined: false });
      expect(events).toEqual([]);
      return;
    }
    let room = model.rooms.get(roomId);
    const roomCreated = room === undefined;
    if (!room) {
      room = { createdAt: model.now, members: new Map() };
      model.rooms.set(roomId, room);
    }
    let member = room.members.get(conn.userId);
    const userJoined = member === undefined;
    if (!member) {
      member = { name: conn.name, joinedAt: model.now, connections: new Set() };
      room.members.set(conn.userId, member);
    }
    member.connections.add(connectionId);
    expect(result).toEqual({ roomCreated, userJoined, connectionJoined: true });
    expect(events).toEqual([...(roomCreated ? [`roomCreated ${roomId}`] : []), ...(userJoined ? [`userJoined ${roomId} ${conn.userId} ${conn.name}`] : [])]);
  });

const leaveCmd = (connectionId: string, roomId: string) =>
  command(`leave(${connectionId}, ${roomId})`, (model, { registry, events }) => {
    const conn = model.connections.get(connectionId);
    const held = conn?.rooms.get(roomId);
    const result = registry.leave(connectionId, roomId);
    if (!conn || held === undefined) {
      expect(result).toBeNull();
      expect(events).toEqual([]);
      return;
    }
    if (held > 1) {
      conn.rooms.set(roomId, held - 1);
      expect(result).toEqual({ roomId, userId: conn.userId, userLeft: false, roomDeleted: false });
      expect(events).toEqual([]);
      return;
    }
    conn.rooms.delete(roomId);
    const outcome = modelRemove(model, connectionId, roomId);
    expect(result).toEqual({ roomId, userId: conn.userId, userLeft: outcome[0], roomDeleted: outcome[1] });
    expect(events).toEqual(leaveEvents(conn.userId, roomId, outcome));
  });

const leaveAllCmd = (connectionId: string) =>
  command(`leaveAll(${connectionId})`, (model, { registry, events }) => {
    const conn = model.connections.get(connectionId);
    const results = registry.leaveAll(connectionId);
    if (!conn) {
      expect(results).toEqual([]);
      expect(events).toEqual([]);
      return;
    }
    const expected = [];
    const expectedEvents: string[] = [];
    for (const roomId of [...conn.rooms.keys()]) {
      const outcome = modelRemove(model, connectionId, roomId);
      expected.push({ roomId, userId: conn.userId, userLeft: outcome[0], roomDeleted: outcome[1] });
      expectedEvents.push(...leaveEvents(conn.userId, roomId, outcome));
    }
    conn.rooms.clear();
    expect(results).toEqual(expected);
    expect(events).toEqual(expectedEvents);
  });

const disconnectCmd = (connectionId: string) =>
  command(`disconnect(${connectionId})`, (model, { registry, events }) => {
    const expected = modelDisconnect(model, connectionId);
    expect(registry.disconnect(connectionId)).toEqual(expected.results);
    expect(events).toEqual(expected.events);
  });

/** The same connection id comes back (possibly as another user) and rejoins the rooms it had. */
const reconnectCmd = (connectionId: string, userId: string) =>
  command(`reconnect(${connectionId}, ${userId})`, (model, real) => {
    const rooms = [...(model.connections.get(connectionId)?.rooms.keys() ?? [])];
    const expected = modelDisconnect(model, connectionId);
    expect(real.registry.disconnect(connectionId)).toEqual(expected.results);
    real.registry.connect(connectionId, { userId });
    model.connections.set(connectionId, { userId, name: undefined, rooms: new Map() });
    expectConsistent(model, real);
    for (const roomId of rooms) joinCmd(connectionId, roomId).run(model, real);
  });

const commands = [
  fc.tuple(fc.constantFrom(...CONNECTIONS), fc.constantFrom(...USERS), fc.constantFrom(...NAMES)).map(([c, u, n]) => connectCmd(c, u, n)),
  fc.tuple(fc.constantFrom(...CONNECTIONS), fc.constantFrom(...ROOMS)).map(([c, r]) => joinCmd(c, r)),
  fc.tuple(fc.constantFrom(...CONNECTIONS), fc.constantFrom(...ROOMS)).map(([c, r]) => joinCmd(c, r)),
  fc.tuple(fc.constantFrom(...CONNECTIONS), fc.constantFrom(...ROOMS)).map(([c, r]) => leaveCmd(c, r)),
  fc.constantFrom(...CONNECTIONS).map((c) => leaveAllCmd(c)),
  fc.constantFrom(...CONNECTIONS).map((c) => disconnectCmd(c)),
  fc.tuple(fc.constantFrom(...CONNECTIONS), fc.constantFrom(...USERS)).map(([c, u]) => reconnectCmd(c, u)),
];

// ---------------------------------------------------------------- the invariants

function expectConsistent(model: Model, { registry, listeners }: Real): void {
  const users = new Map<string, Set<string>>();
  for (const [id, conn] of model.connections) {
    const set = users.get(conn.userId) ?? new Set<string>();
    set.add(id);
    users.set(conn.userId, set);
  }
  // A room exists iff some connection holds it, and the model's rooms are exactly those.
  const held = new Set([...model.connections.values()].flatMap((c) => [...c.rooms.keys()]));
  expect(new Set(model.rooms.keys())).toEqual(held);
  expect(new Set(registry.roomIds())).toEqual(held);
  expect(registry.counts()).toEqual({ rooms: held.size, connections: model.connections.size, users: users.size });

  for (const roomId of ROOMS) {
    const room = model.rooms.get(roomId);
    expect(registry.hasRoom(roomId)).toBe(room !== undefined);
    const inRoom = [...model.connections].filter(([, c]) => c.rooms.has(roomId)).map(([id]) => id);
    expect(new Set(registry.roomConnections(roomId))).toEqual(new Set(inRoom));
    // Presence: one member per user with a connection in the room, counting those connections.
    const presence = new Map<string, number>();
    for (const id of inRoom) presence.set(model.connections.get(id)!.userId, (presence.get(model.connections.get(id)!.userId) ?? 0) + 1);
    expect(new Set(registry.roomMemberIds(roomId))).toEqual(new Set(presence.keys()));
    const snapshot = registry.snapshot(roomId);
    if (!room) {
      expect(snapshot).toBeUndefined();
    } else {
      expect(snapshot?.connectionCount).toBe(inRoom.length);
      expect(snapshot?.createdAt.getTime()).toBe(room.createdAt);
      const members = Object.fromEntries(
        (snapshot?.members ?? []).map((m) => [m.userId, { name: m.name, connections: m.connections, joinedAt: m.joinedAt.getTime() }]),
      );
      expect(members).toEqual(
        Object.fromEntries([...room.members].map(([userId, m]) => [userId, { name: m.name, connections: m.connections.size, joinedAt: m.joinedAt }])),
      );
      expect(new Map([...room.members].map(([u, m]) => [u, m.connections.size]))).toEqual(presence);
    }
    for (const userId of USERS) {
      expect(registry.isMember(userId, roomId)).toBe(presence.has(userId));
      // userConnectionsInRoom agrees with both indexes: the room's connections owned by the user.
      const expected = inRoom.filter((id) => model.connections.get(id)!.userId === userId);
      expect(new Set(registry.userConnectionsInRoom(userId, roomId))).toEqual(new Set(expected));
    }
  }

  for (const connectionId of CONNECTIONS) {
    const conn = model.connections.get(connectionId);
    expect(registry.connectionUser(connectionId)).toEqual(conn && { userId: conn.userId, ...(conn.name !== undefined && { name: conn.name }) });
    expect(registry.connectionRooms(connectionId)).toEqual([...(conn?.rooms.keys() ?? [])]);
    for (const roomId of ROOMS) {
      const inRoom = conn?.rooms.has(roomId) ?? false;
      expect(registry.isConnectionInRoom(connectionId, roomId)).toBe(inRoom);
      // Both indexes agree: connection → rooms and room → connections.
      expect(registry.roomConnections(roomId).has(connectionId)).toBe(inRoom);
    }
  }

  for (const userId of USERS) {
    const connections = users.get(userId) ?? new Set<string>();
    expect(new Set(registry.userConnections(userId))).toEqual(connections);
    const rooms = new Set([...connections].flatMap((id) => [...model.connections.get(id)!.rooms.keys()]));
    expect(new Set(registry.userRooms(userId))).toEqual(rooms);
  }
  expect(registry.events.count()).toBe(listeners);
}

function setup(): { model: Model; real: Real } {
  let now = 1_000;
  const registry = new RoomRegistry(() => now);
  const events: string[] = [];
  registry.events.on('roomCreated', ({ roomId }) => events.push(`roomCreated ${roomId}`));
  registry.events.on('roomDeleted', ({ roomId }) => events.push(`roomDeleted ${roomId}`));
  registry.events.on('userJoined', ({ roomId, userId, name }) => events.push(`userJoined ${roomId} ${userId} ${name}`));
  registry.events.on('userLeft', ({ roomId, userId }) => events.push(`userLeft ${roomId} ${userId}`));
  registry.events.on('connectionAdded', ({ connectionId, userId }) => events.push(`connectionAdded ${connectionId} ${userId}`));
  registry.events.on('connectionRemoved', ({ connectionId, userId }) => events.push(`connectionRemoved ${connectionId} ${userId}`));
  return {
    model: { now, connections: new Map(), rooms: new Map() },
    real: { registry, events, tick: () => (now += 1), listeners: registry.events.count() },
  };
}

describe('RoomRegistry (model-based)', () => {
  it('any sequence of connect/join/leave/leaveAll/disconnect/reconnect keeps the registry equal to the model', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60 }), (cmds) => {
        fc.modelRun(setup, cmds);
      }),
      { numRuns: 300 },
    );
  });

  it('ends empty once every connection disconnects, whatever came before', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 40 }), (cmds) => {
        const { model, real } = setup();
        fc.modelRun(() => ({ model, real }), cmds);
        for (const connectionId of CONNECTIONS) disconnectCmd(connectionId).run(model, real);
        expect(real.registry.counts()).toEqual({ rooms: 0, connections: 0, users: 0 });
        expect(real.registry.roomIds()).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});
