import type { EventId, RoomEnvelope, RoomEvent, RoomId } from '../domain/types.ts';
import { RoomHistory, type AcceptEnvelope, type ResumeResult, type StoredPage } from '../history/room-history.ts';
import type { Broker, BrokerListener, PublishOptions } from './broker.ts';

export interface MemoryBrokerOptions {
  historySize: number;
  historyTtlMs: number;
  /** Node-wide budget for the histories of rooms without members (see RoomHistory). */
  maxIdleRooms?: number;
  maxIdleBytes?: number;
  now?: () => number;
  /** How often expired histories are swept; defaults to a tenth of the TTL, at most 30 s. */
  sweepIntervalMs?: number;
}

/** The single-node broker: ids, history and fan-out all in this process. */
export class MemoryBroker implements Broker {
  readonly history: RoomHistory;
  private readonly listeners = new Map<RoomId, Set<BrokerListener>>();
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(options: MemoryBrokerOptions) {
    this.history = new RoomHistory({
      size: options.historySize,
      ttlMs: options.historyTtlMs,
      ...(options.maxIdleRooms !== undefined && { maxIdleRooms: options.maxIdleRooms }),
      ...(options.maxIdleBytes !== undefined && { maxIdleBytes: options.maxIdleBytes }),
      ...(options.now && { now: options.now }),
    });
    const interval = options.sweepIntervalMs ?? Math.max(50, Math.min(30_000, Math.floor(options.historyTtlMs / 10)));
    this.sweepTimer = setInterval(() => this.history.sweep(), interval);
    this.sweepTimer.unref();
  }

  publish(roomId: RoomId, event: RoomEvent, options: PublishOptions): Promise<RoomEnvelope> {
    const envelope = this.history.append(roomId, event, options.audience ?? {}, options.store);
    this.deliver(roomId, envelope, false);
    return Promise.resolve(envelope);
  }

  redeliver(roomId: RoomId, envelope: RoomEnvelope): void {
    this.deliver(roomId, envelope, true);
  }

  subscribe(roomId: RoomId, listener: BrokerListener): () => void {
    let set = this.listeners.get(roomId);
    if (!set) {
      set = new Set();
      this.listeners.set(roomId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(roomId) === set) this.listeners.delete(roomId);
    };
  }

  readSince(roomId: RoomId, lastEventId: string): Promise<ResumeResult> {
    return Promise.resolve(this.history.readSince(roomId, lastEventId));
  }

  readBefore(roomId: RoomId, before: EventId | null, limit: number, accept?: AcceptEnvelope): Promise<StoredPage> {
    return Promise.resolve(this.history.readBefore(roomId, before, limit, accept));
  }

  head(roomId: RoomId): Promise<string> {
    return Promise.resolve(this.history.head(roomId));
  }

  roomActive(roomId: RoomId): void {
    this.history.markActive(roomId);
  }

  roomIdle(roomId: RoomId): void {
    this.history.markIdle(roomId);
  }

  close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.listeners.clear();
    return Promise.resolve();
  }

  /** Rooms with at least one listener (for leak checks). */
  subscribedRooms(): number {
    return this.listeners.size;
  }

  private deliver(roomId: RoomId, envelope: RoomEnvelope, redelivery: boolean): void {
    const set = this.listeners.get(roomId);
    if (!set) return;
    for (const listener of set) listener(envelope, redelivery);
  }
}
