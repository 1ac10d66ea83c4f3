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

const CONNECTIONS = ['c0', 'c1', 'c2', 'c3'] as const;
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

const sorted = (values: Iterable<string>): string[] => [...values].sort();

/**
 * Everything the registry answers about the pools, read through its public API. The same shape
 * is derived from the model, and the two are compared in one deep equality after every step.
 * Each fact is read through both indexes where the registry has two (room → connections and
 * connection → rooms; user → connections and room → members), so they must agree.
 */
function observe(registry: RoomRegistry) {
  return {
    counts: registry.counts(),
    roomIds: sorted(registry.roomIds()),
    listeners: registry.events.count(),
    rooms: Object.fromEntries(
      ROOMS.map((roomId) => {
        const snapshot = registry.snapshot(roomId);
        return [
          roomId,
          {
            exists: registry.hasRoom(roomId),
            connections: sorted(registry.roomConnections(roomId)),
            memberIds: sorted(registry.roomMemberIds(roomId)),
            snapshot: snapshot && {
              createdAt: snapshot.createdAt.getTime(),
              connectionCount: snapshot.connectionCount,
              members: Object.fromEntries(snapshot.members.map((m) => [m.userId, { name: m.name, connections: m.connections, joinedAt: m.joinedAt.getTime() }])),
            },
            users: Object.fromEntries(USERS.map((u) => [u, { isMember: registry.isMember(u, roomId), connections: sorted(registry.userConnectionsInRoom(u, roomId)) }])),
          },
        ];
      }),
    ),
    connections: Object.fromEntries(
      CONNECTIONS.map((c) => [
        c,
        {
          user: registry.connectionUser(c),
          rooms: registry.connectionRooms(c),
          inRoom: ROOMS.map((r) => registry.isConnectionInRoom(c, r)),
          inRoomByRoomIndex: ROOMS.map((r) => registry.roomConnections(r).has(c)),
        },
      ]),
    ),
    users: Object.fromEntries(USERS.map((u) => [u, { connections: sorted(registry.userConnections(u)), rooms: sorted(registry.userRooms(u)) }])),
  };
}

/** What `observe` must give, derived from the model's connections (plus join times and names). */
function expected(model: Model, listeners: number): ReturnType<typeof observe> {
  const conns = [...model.connections];
  const inRoom = (roomId: string) => conns.filter(([, c]) => c.rooms.has(roomId)).map(([id]) => id);
  const ofUser = (userId: string) => conns.filter(([, c]) => c.userId === userId).map(([id]) => id);
  // A room exists iff some connection holds it.
  const held = ROOMS.filter((r) => inRoom(r).length > 0);
  const usersOnline = new Set(conns.map(([, c]) => c.userId));
  return {
    counts: { rooms: held.length, connections: conns.length, users: usersOnline.size },
    roomIds: sorted(held),
    listeners,
    rooms: Object.fromEntries(
      ROOMS.map((roomId) => {
        const connections = inRoom(roomId);
        const userOf = (id: string) => model.connections.get(id)!.userId;
        const room = model.rooms.get(roomId);
        // Presence: one member per user with a connection in the room, counting those connections.
        const members = new Set(connections.map(userOf));
        return [
          roomId,
          {
            exists: connections.length > 0,
            connections: sorted(connections),
            memberIds: sorted(members),
            snapshot: room && {
              createdAt: room.createdAt,
              connectionCount: connections.length,
              members: Object.fromEntries(
                [...members].map((u) => [u, { name: room.members.get(u)?.name, connections: connections.filter((id) => userOf(id) === u).length, joinedAt: room.members.get(u)?.joinedAt ?? -1 }]),
              ),
            },
            users: Object.fromEntries(USERS.map((u) => [u, { isMember: members.has(u), connections: sorted(connections.filter((id) => userOf(id) === u)) }])),
          },
        ];
      }),
    ),
    connections: Object.fromEntries(
      CONNECTIONS.map((id) => {
        const c = model.connections.get(id);
        const rooms = ROOMS.map((r) => c?.rooms.has(r) ?? false);
        return [id, { user: c && { userId: c.userId, ...(c.name !== undefined && { name: c.name }) }, rooms: [...(c?.rooms.keys() ?? [])], inRoom: rooms, inRoomByRoomIndex: rooms }];
      }),
    ),
    users: Object.fromEntries(
      USERS.map((u) => [u, { connections: sorted(ofUser(u)), rooms: sorted(new Set(ofUser(u).flatMap((id) => [...model.connections.get(id)!.rooms.keys()]))) }]),
    ),
  };
}

function expectConsistent(model: Model, { registry, listeners }: Real): void {
  // The model's own room table (kept for join times and names) has exactly the held rooms.
  expect(sorted(model.rooms.keys())).toEqual(sorted(new Set([...model.connections.values()].flatMap((c) => [...c.rooms.keys()]))));
  expect(observe(registry)).toEqual(expected(model, listeners));
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
      fc.property(fc.commands(commands, { maxCommands: 80, size: 'large' }), (cmds) => {
        fc.modelRun(setup, cmds);
      }),
      { numRuns: 150 },
    );
  });

  it('ends empty once every connection disconnects, whatever came before', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60, size: 'large' }), (cmds) => {
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
