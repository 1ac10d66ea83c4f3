import superjson from 'superjson';
import type { Audience, EventId, RoomEnvelope, RoomEvent, RoomId } from '../domain/types.ts';
import type { ClusterKeys } from './keys.ts';
import { unavailable, type RedisConnections } from './redis-connection.ts';
import { formatEventId, newEpoch, parseEventId, type ParsedEventId } from '../history/event-id.ts';
import { judgeResume, newestSeqBefore, type AcceptEnvelope, type ResumeResult, type StoredPage } from '../history/room-history.ts';
import type { Logger } from '../logger.ts';
import type { Broker, BrokerListener, PublishOptions } from '../broker/broker.ts';

/**
 * The cluster broker, after Centrifugo's Redis engine. One Lua script gives an event its id,
 * appends it to the room's stream (stored events) and publishes it on the room's sharded
 * channel, so the stream order is the delivery order on every node and every node sees the same
 * id. History is a Redis Stream capped at HISTORY_SIZE whose entry ids are the event seqs; the
 * room's epoch lives beside it, and a lost history (expiry, a Redis restart) changes the epoch so
 * old ids are answered with `resync`, never with a silent gap.
 *
 * Each node subscribes only to rooms with local members. It remembers the last seq it received
 * per room: a jump (pub/sub is at-most-once) or a reconnect after an outage is filled from the
 * stream before newer events are delivered, and an epoch change is delivered as `resync`.
 */

export interface RedisBrokerOptions {
  redis: RedisConnections;
  keys: ClusterKeys;
  historySize: number;
  historyTtlMs: number;
  log: Logger;
  /** Most internal events kept while Redis is down, published in order when it is back. */
  outboxLimit?: number;
}

/** How a script answers readSince/head: epoch, seq, sub, stream length, entries after the cursor. */
type ReadReply = [string, string, string, number, Array<[string, string[]]>];

/**
 * Lua: the room's epoch, starting a new history (fresh epoch, empty stream) when there is none —
 * the first event ever, or the history expired or was lost. `newEpoch` is the ARGV holding one.
 */
const ENSURE_ROOM = (newEpoch: string) => `
local epoch = redis.call('HGET', KEYS[1], 'e')
local created = false
if not epoch then
  epoch = ${newEpoch}
  created = true
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0, 'u', 0)
end
`;

const PUBLISH_SCRIPT = `${ENSURE_ROOM('ARGV[6]')}
local id
if ARGV[1] == '1' then
  local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
  redis.call('HSET', KEYS[1], 'u', 0)
  id = epoch .. ':' .. string.format('%012d', seq)
  local size = tonumber(ARGV[3])
  if size > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', size, seq .. '-0', 'd', ARGV[2])
  end
else
  local sub = redis.call('HINCRBY', KEYS[1], 'u', 1)
  local seq = tonumber(redis.call('HGET', KEYS[1], 's'))
  id = epoch .. ':' .. string.format('%012d', seq) .. '.' .. string.format('%012d', sub)
end
-- Any event keeps the room's history alive, like the in-memory log (the stream may not exist).
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SPUBLISH', ARGV[5], 'L' .. id .. '\\n' .. ARGV[2])
return id
`;

/** Creates the room if needed, then answers its head and (ARGV[3] >= 0) the entries after a seq. */
const READ_SCRIPT = `${ENSURE_ROOM('ARGV[1]')}
if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local meta = redis.call('HMGET', KEYS[1], 's', 'u')
local len = redis.call('XLEN', KEYS[2])
local entries = {}
local after = tonumber(ARGV[3])
if after >= 0 and len > 0 then
  entries = redis.call('XRANGE', KEYS[2], '(' .. after .. '-0', '+')
end
return {epoch, meta[1], meta[2], len, entries}
`;

/**
 * Scrollback: up to ARGV[3] entries from ARGV[2] down (XREVRANGE; ARGV[2] is '+' or a stream id,
 * '(' for an exclusive bound), with the room's epoch. Reads only — no room is created, no TTL
 * touched. ARGV[1], when not empty, is the epoch the reader pages in: another one answers no
 * entries (that history is gone). '' as the epoch: the room has no history.
 */
const READ_BEFORE_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then return {'', {}} end
if ARGV[1] ~= '' and ARGV[1] ~= epoch then return {epoch, {}} end
return {epoch, redis.call('XREVRANGE', KEYS[2], ARGV[2], '-', 'COUNT', ARGV[3])}
`;

/** Re-publishes an envelope with the same id (ack re-sends): not stored. */
const REDELIVER_SCRIPT = `
redis.call('SPUBLISH', KEYS[1], ARGV[1])
return 1
`;

interface RoomSubscription {
  listeners: Set<BrokerListener>;
  ready: Promise<void>;
  /** The last stored event this node delivered for the room (gap detection). */
  last: ParsedEventId | null;
  /** Messages that arrived while a gap is being filled, delivered after it. */
  filling: Array<{ envelope: RoomEnvelope; redelivery: boolean }> | null;
  fillRunning: boolean;
  /** Local publishers waiting until their event has come back and been fanned out here. */
  echoes: Array<{ seq: number; epoch: string; resolve: () => void }>;
}

type Scripted = {
  rtPublish(meta: string, stream: string, store: string, payload: string, size: number, ttl: number, channel: string, epoch: string): Promise<string>;
  rtRead(meta: string, stream: string, epoch: string, ttl: number, after: number): Promise<ReadReply>;
  rtRedeliver(channel: string, message: string): Promise<number>;
  rtReadBefore(meta: string, stream: string, epoch: string, max: string, count: number): Promise<[string, Array<[string, string[]]>]>;
};

export class RedisBroker implements Broker {
  private readonly rooms = new Map<RoomId, RoomSubscription>();
  private readonly channels = new Map<string, RoomId>();
  /** Rooms with local members: their history does not expire while they stay so. */
  private readonly active = new Set<RoomId>();
  private readonly outbox: Array<{ roomId: RoomId; event: RoomEvent; options: PublishOptions }> = [];
  private readonly refreshTimer: NodeJS.Timeout;
  private readonly offUp: () => void;
  private readonly redis: RedisConnections;
  private readonly keys: ClusterKeys;
  private readonly cmd: Scripted;
  private flushing = false;
  /** Publishes sent to Redis and not yet answered. */
  private publishing = 0;
  private closed = false;
  /** Counters for the admin plane and tests. */
  readonly counters = { gapsFilled: 0, resyncs: 0, outboxDropped: 0 };

  constructor(private readonly options: RedisBrokerOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    const { cmd, sub } = this.redis;
    cmd.defineCommand('rtPublish', { numberOfKeys: 2, lua: PUBLISH_SCRIPT });
    cmd.defineCommand('rtRead', { numberOfKeys: 2, lua: READ_SCRIPT });
    cmd.defineCommand('rtRedeliver', { numberOfKeys: 1, lua: REDELIVER_SCRIPT });
    cmd.defineCommand('rtReadBefore', { numberOfKeys: 2, lua: READ_BEFORE_SCRIPT });
    this.cmd = cmd as unknown as Scripted;
    sub.on('smessage', (channel: string, message: string) => this.onMessage(channel, message));
    this.offUp = this.redis.events.on('up', () => void this.resynchronise());
    // Keep active rooms' history alive: refresh their TTL a few times per TTL.
    const every = Math.max(100, Math.min(30_000, Math.floor(options.historyTtlMs / 4)));
    this.refreshTimer = setInterval(() => this.refreshActive(), every);
    this.refreshTimer.unref();
  }

  async publish(roomId: RoomId, event: RoomEvent, options: PublishOptions): Promise<RoomEnvelope> {
    if (!this.redis.available) {
      if (options.queueWhileUnavailable) return this.enqueue(roomId, event, options);
      throw unavailable();
    }
    const audience: Audience = options.audience ?? {};
    const publishedAt = performance.timeOrigin + performance.now();
    const payload = superjson.stringify({ event, audience, publishedAt });
    this.publishing += 1;
    const id = await this.cmd.rtPublish(
      this.keys.roomMeta(roomId),
      this.keys.roomStream(roomId),
      options.store ? '1' : '0',
      payload,
      this.options.historySize,
      this.options.historyTtlMs,
      this.keys.roomChannel(roomId),
      newEpoch(),
    ).finally(() => {
      this.publishing -= 1;
    });
    await this.echo(roomId, id, options.store);
    return { id, event, audience, publishedAt };
  }

  /**
   * When this node has members in the room, a publish resolves once the event has come back
   * from Redis and been written to them, as an in-process publish does: a sender cannot run
   * ahead of its own node's fan-out (backpressure), and a reply never precedes local delivery.
   * Bounded by ECHO_WAIT_MS in case Redis goes away in between.
   */
  private echo(roomId: RoomId, id: string, stored: boolean): Promise<void> {
    const room = this.rooms.get(roomId);
    const parsed = parseEventId(id);
    if (!room || !stored || !parsed || isDelivered(room, parsed)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ECHO_WAIT_MS);
      timer.unref();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      room.echoes.push({ seq: parsed.seq, epoch: parsed.epoch, resolve: done });
    });
  }

  private settleEchoes(room: RoomSubscription): void {
    if (room.echoes.length === 0) return;
    const waiting = room.echoes;
    room.echoes = [];
    for (const echo of waiting) {
      if (isDelivered(room, echo)) echo.resolve();
      else room.echoes.push(echo);
    }
  }

  redeliver(roomId: RoomId, envelope: RoomEnvelope): void {
    if (!this.redis.available) return; // re-sends are periodic: the next one goes out when Redis is back
    const payload = superjson.stringify({ event: envelope.event, audience: envelope.audience, publishedAt: envelope.publishedAt });
    this.cmd.rtRedeliver(this.keys.roomChannel(roomId), `R${envelope.id}\n${payload}`).catch((error: unknown) => {
      this.options.log.warn({ err: error, roomId }, 'ack re-send failed');
    });
  }

  subscribe(roomId: RoomId, listener: BrokerListener): () => void {
    let room = this.rooms.get(roomId);
    if (!room) {
      const channel = this.keys.roomChannel(roomId);
      const created: RoomSubscription = { listeners: new Set(), ready: Promise.resolve(), last: null, filling: null, fillRunning: false, echoes: [] };
      room = created;
      this.rooms.set(roomId, created);
      this.channels.set(channel, roomId);
      created.ready = this.startSubscription(roomId, channel, created);
      created.ready.catch(() => undefined);
    }
    room.listeners.add(listener);
    const owned = room;
    return () => {
      owned.listeners.delete(listener);
      if (owned.listeners.size > 0 || this.rooms.get(roomId) !== owned) return;
      this.rooms.delete(roomId);
      for (const echo of owned.echoes.splice(0)) echo.resolve();
      const channel = this.keys.roomChannel(roomId);
      this.channels.delete(channel);
      this.redis.sub.sunsubscribe(channel).catch(() => undefined);
    };
  }

  /** Resolves when the node receives the room's events (the service waits before reading history). */
  subscribed(roomId: RoomId): Promise<void> {
    return this.rooms.get(roomId)?.ready ?? Promise.resolve();
  }

  async readSince(roomId: RoomId, lastEventId: string): Promise<ResumeResult> {
    const parsed = parseEventId(lastEventId);
    const reply = await this.read(roomId, parsed ? parsed.seq : -1);
    const verdict = judgeResume(parsed, reply);
    return verdict.kind === 'resync' ? verdict : { kind: 'replay', events: reply.entries, head: verdict.head };
  }

  /**
   * Scrollback from the room's stream, newest first, in chunks (XREVRANGE with an exclusive
   * bound) until `limit` events `accept` takes, and one more to know whether an older page
   * exists, or the stream's end. The stream holds HISTORY_SIZE entries at most, so this is
   * bounded. If the history is lost and restarted between chunks, the page ends there.
   */
  async readBefore(roomId: RoomId, before: EventId | null, limit: number, accept: AcceptEnvelope = () => true): Promise<StoredPage> {
    this.redis.assertAvailable();
    const events: RoomEnvelope[] = [];
    if (limit <= 0) return { events, more: false };
    let epoch = '';
    let max = '+';
    if (before !== null) {
      const parsed = parseEventId(before);
      if (!parsed) return { events, more: false };
      epoch = parsed.epoch;
      const newest = newestSeqBefore(parsed);
      if (newest < 1) return { events, more: false };
      max = `${newest}-0`;
    }
    const count = Math.max(1, Math.min(this.options.historySize, Math.max(limit + 1, READ_CHUNK)));
    for (;;) {
      const [current, raw] = await this.cmd.rtReadBefore(this.keys.roomMeta(roomId), this.keys.roomStream(roomId), epoch, max, count);
      if (current === '' || (epoch !== '' && current !== epoch)) return { events, more: false };
      epoch = current;
      for (const [streamId, fields] of raw) {
        const envelope = decode(formatEventId(epoch, seqOf(streamId)), fields[1]!);
        if (!accept(envelope)) continue;
        if (events.length === limit) return { events, more: true };
        events.push(envelope);
      }
      if (raw.length < count) return { events, more: false };
      max = `(${raw.at(-1)![0]}`;
    }
  }

  async head(roomId: RoomId): Promise<string> {
    const reply = await this.read(roomId, -1);
    return formatEventId(reply.epoch, reply.seq, reply.sub);
  }

  roomActive(roomId: RoomId): void {
    this.active.add(roomId);
  }

  roomIdle(roomId: RoomId): void {
    this.active.delete(roomId);
  }

  async close(): Promise<void> {
    // What is being published (the last reports of a drain, say) goes out first, bounded.
    const deadline = Date.now() + 1000;
    while (this.publishing > 0 && this.redis.available && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.closed = true;
    clearInterval(this.refreshTimer);
    this.offUp();
    this.rooms.clear();
    this.channels.clear();
    return Promise.resolve();
  }

  /** Rooms this node receives (for leak checks and the admin plane). */
  subscribedRooms(): number {
    return this.rooms.size;
  }

  get available(): boolean {
    return this.redis.available;
  }

  get outboxSize(): number {
    return this.outbox.length;
  }

  // ---------------------------------------------------------------- internals

  private async read(roomId: RoomId, after: number): Promise<{ epoch: string; seq: number; sub: number; length: number; entries: RoomEnvelope[] }> {
    this.redis.assertAvailable();
    const [epoch, seq, sub, length, raw] = await this.cmd.rtRead(this.keys.roomMeta(roomId), this.keys.roomStream(roomId), newEpoch(), this.options.historyTtlMs, after);
    const entries = raw.map(([streamId, fields]) => decode(formatEventId(epoch, seqOf(streamId)), fields[1]!));
    return { epoch, seq: Number(seq), sub: Number(sub), length: Number(length), entries };
  }

  private async startSubscription(roomId: RoomId, channel: string, room: RoomSubscription): Promise<void> {
    // A node that has just started (or is reconnecting) gets a moment before it says unavailable.
    await this.redis.whenAvailable(SUBSCRIBE_WAIT_MS).catch(() => undefined);
    if (!this.redis.available) {
      // Queue the subscription for the reconnect, but refuse to start a stream now.
      this.redis.sub.ssubscribe(channel).catch(() => undefined);
      throw unavailable();
    }
    await this.redis.sub.ssubscribe(channel);
    // Where this node's stream of the room starts: the gap check and reconnect fill count from here.
    const head = parseEventId(await this.head(roomId));
    if (head && room.last === null) room.last = head;
  }

  private onMessage(channel: string, message: string): void {
    const roomId = this.channels.get(channel);
    if (roomId === undefined) return;
    const room = this.rooms.get(roomId);
    if (!room) return;
    const newline = message.indexOf('\n');
    if (newline < 2) return;
    let envelope: RoomEnvelope;
    try {
      envelope = decode(message.slice(1, newline), message.slice(newline + 1));
    } catch (error) {
      this.options.log.error({ err: error, roomId }, 'undecodable cluster message dropped');
      return;
    }
    this.accept(roomId, room, envelope, message[0] === 'R');
  }

  /**
   * Delivers one message in stream order: a stored event right after the last one goes out; an
   * older one is a duplicate of a fill; a newer one (or one of another epoch) means pub/sub lost
   * something, so the gap is filled from the stream first. Ephemeral events carry the seq of the
   * stored event before them and are checked the same way. Re-sends repeat an old id on purpose.
   */
  private accept(roomId: RoomId, room: RoomSubscription, envelope: RoomEnvelope, redelivery: boolean): void {
    if (room.filling) {
      room.filling.push({ envelope, redelivery });
      return;
    }
    const id = redelivery ? null : parseEventId(envelope.id);
    if (id && room.last) {
      const stored = id.sub === 0;
      if (id.epoch !== room.last.epoch || id.seq > room.last.seq + (stored ? 1 : 0)) {
        room.filling = [{ envelope, redelivery }];
        void this.fill(roomId, room);
        return;
      }
      if (stored && id.seq <= room.last.seq) return;
    }
    if (id && id.sub === 0) room.last = id;
    this.dispatch(room, envelope, redelivery);
    this.settleEchoes(room);
  }

  private dispatch(room: RoomSubscription, envelope: RoomEnvelope, redelivery: boolean): void {
    for (const listener of room.listeners) listener(envelope, redelivery);
  }

  /** Delivers what the node missed in a room since `room.last`, or a `resync` when it cannot. */
  private async fill(roomId: RoomId, room: RoomSubscription): Promise<void> {
    room.filling ??= [];
    if (room.fillRunning) return;
    room.fillRunning = true;
    try {
      const from = room.last;
      const result = from ? await this.readSince(roomId, formatEventId(from.epoch, from.seq)) : null;
      if (this.rooms.get(roomId) !== room) {
        room.fillRunning = false;
        return;
      }
      if (result?.kind === 'replay') {
        for (const envelope of result.events) this.dispatch(room, envelope, false);
        if (result.events.length > 0) this.counters.gapsFilled += 1;
      } else if (result?.kind === 'resync') {
        this.counters.resyncs += 1;
        this.options.log.warn({ roomId, reason: result.reason }, 'room history lost while subscribed; sending resync');
        this.dispatch(room, { id: result.head, event: { type: 'resync', conversationId: roomId, at: new Date(), reason: result.reason }, audience: {} }, false);
      }
      if (result) {
        const head = parseEventId(result.head);
        if (head) room.last = { epoch: head.epoch, seq: head.seq, sub: 0 };
      }
      room.fillRunning = false;
      this.drain(roomId, room);
      this.settleEchoes(room);
    } catch (error) {
      // Redis went away again; what was queued waits for the fill that the next `up` starts.
      room.fillRunning = false;
      this.options.log.warn({ err: error, roomId }, 'gap fill failed; will retry when Redis is back');
      if (this.redis.available) setTimeout(() => void this.fill(roomId, room), 100).unref();
    }
  }

  /** Delivers what arrived during a fill, through the same order checks. */
  private drain(roomId: RoomId, room: RoomSubscription): void {
    const queued = room.filling ?? [];
    room.filling = null;
    for (let i = 0; i < queued.length; i += 1) {
      const item = queued[i]!;
      this.accept(roomId, room, item.envelope, item.redelivery);
      if (room.filling) {
        // Another gap: the new fill delivers the rest after it.
        (room.filling as Array<{ envelope: RoomEnvelope; redelivery: boolean }>).push(...queued.slice(i + 1));
        return;
      }
    }
  }

  /** After an outage: fill every subscribed room's gap, then publish what was queued meanwhile. */
  private async resynchronise(): Promise<void> {
    if (this.closed) return;
    // ioredis re-subscribes on the subscriber connection(s) as they come back; a round trip on
    // each makes sure those subscriptions are in effect before the gaps are read from the streams,
    // so nothing published in between can slip through unnoticed.
    try {
      await this.redis.pingSubscribers();
    } catch {
      return; // down again: the next `up` starts over
    }
    for (const [roomId, room] of this.rooms) {
      if (room.last === null) {
        void this.head(roomId).then(
          (head) => {
            if (room.last === null) room.last = parseEventId(head);
          },
          () => undefined,
        );
        continue;
      }
      room.filling ??= [];
      void this.fill(roomId, room);
    }
    void this.flushOutbox();
  }

  private enqueue(roomId: RoomId, event: RoomEvent, options: PublishOptions): Promise<RoomEnvelope> {
    const limit = this.options.outboxLimit ?? 10_000;
    if (this.outbox.length >= limit) {
      this.outbox.shift();
      this.counters.outboxDropped += 1;
    }
    this.outbox.push({ roomId, event, options });
    // The caller only needs to know it was accepted; the id is assigned when it is published.
    return Promise.resolve({ id: '', event, audience: options.audience ?? {} });
  }

  private async flushOutbox(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.outbox.length > 0 && this.redis.available && !this.closed) {
        const item = this.outbox[0]!;
        await this.publish(item.roomId, item.event, { ...item.options, queueWhileUnavailable: false });
        this.outbox.shift();
      }
    } catch (error) {
      this.options.log.warn({ err: error, queued: this.outbox.length }, 'outbox flush interrupted; retrying when Redis is back');
    } finally {
      this.flushing = false;
    }
  }

  private refreshActive(): void {
    if (!this.redis.available || this.active.size === 0) return;
    // One command per key, not one pipeline: on a Redis Cluster the rooms live on different
    // shards (a pipeline must stay on one); auto-pipelining batches them per connection anyway.
    const { cmd } = this.redis;
    const ttl = this.options.historyTtlMs;
    const refreshes = [...this.active].flatMap((roomId) => [cmd.pexpire(this.keys.roomMeta(roomId), ttl), cmd.pexpire(this.keys.roomStream(roomId), ttl)]);
    Promise.all(refreshes).catch((error: unknown) => this.options.log.warn({ err: error }, 'history TTL refresh failed'));
  }
}

/** How long a new subscription waits for Redis to be reachable before it is refused. */
const SUBSCRIBE_WAIT_MS = 2000;

/** How long a publish waits for its own event to come back before resolving anyway. */
const ECHO_WAIT_MS = 1000;

/** The room's stream on this node has reached `id` (or moved to another epoch, which supersedes it). */
function isDelivered(room: RoomSubscription, id: { epoch: string; seq: number }): boolean {
  return room.last !== null && (room.last.epoch !== id.epoch || room.last.seq >= id.seq);
}

/** Entries a scrollback read asks Redis for at a time (more when the page is larger). */
const READ_CHUNK = 32;

/** A stream entry id is `<seq>-0`: the event's seq in the room. */
function seqOf(streamId: string): number {
  return Number(streamId.slice(0, streamId.indexOf('-')));
}

function decode(id: string, payload: string): RoomEnvelope {
  const { event, audience, publishedAt } = superjson.parse<{ event: RoomEvent; audience: Audience; publishedAt?: number }>(payload);
  return { id, event, audience, ...(publishedAt !== undefined && { publishedAt }) };
}
