/**
 * Workload H's member: a raw-frame tRPC WebSocket client (as clients/trpc.ts, by hand) that only
 * keeps a presence view — what a chat client shows as "who is here". It opens its socket first
 * (authenticated by a `conversation.mine` query), joins the room when the storm says so, and
 * then builds its view like the typed client's presence model: the `subscribed` snapshot (at most
 * 100 members listed), `conversation.presence` pages when the snapshot lists fewer than
 * `memberCount` (events that arrive meanwhile applied again after the pages), single presence
 * events and `presence_diff`s. It counts the presence frames it receives and notes when its
 * view first holds every member of the storm.
 */
import superjson from 'superjson';
import { WebSocket } from 'ws';

interface Frame {
  id?: number | string | null;
  result?: { type?: string; data?: { json?: unknown; meta?: unknown } };
  error?: { json?: { message?: string } };
}

type PresenceEvent =
  | { type: 'subscribed'; members: Array<{ userId: string }>; memberCount: number }
  | { type: 'user_joined' | 'user_left' | 'user_disconnected'; userId: string }
  | { type: 'presence_diff'; joins: Array<{ userId: string }>; leaves: Array<{ userId: string }> }
  | { type: string };

const SUBSCRIPTION_ID = 1;
const PRESENCE_TYPES = new Set(['user_joined', 'user_left', 'user_disconnected', 'presence_diff']);

export class PresenceMember {
  /** Presence events received (one frame each). */
  presenceFrames = 0;
  /** Date.now() when the view first held `expected` members and was complete. */
  completeAt: number | null = null;
  /** Date.now() when the server confirmed the subscription. */
  joinedAt: number | null = null;
  error: string | null = null;
  private members = new Set<string>();
  private complete = false;
  private sincePaging: PresenceEvent[] | null = null;
  private ws: WebSocket | null = null;
  private nextId = SUBSCRIPTION_ID;
  private readonly pending = new Map<number, (frame: Frame) => void>();
  private onStarted: ((error?: Error) => void) | null = null;
  private closing = false;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly room: string,
    /** Members the storm ends with: the view is complete when it holds them all. */
    private readonly expected: number,
  ) {}

  get viewSize(): number {
    return this.members.size;
  }

  get viewComplete(): boolean {
    return this.complete && this.members.size === this.expected;
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.url}?connectionParams=1`, { perMessageDeflate: false });
      this.ws = ws;
      ws.on('open', () => {
        ws.send(JSON.stringify({ method: 'connectionParams', data: { token: this.token } }));
        this.call('query', 'conversation.mine', undefined).then((frame) => (frame.error ? reject(new Error(frame.error.json?.message ?? 'refused')) : resolve()), reject);
      });
      ws.on('message', (data: Buffer) => this.onFrame(data));
      ws.on('error', (error) => reject(error));
      ws.on('close', (code) => {
        reject(new Error(`closed with ${code}`));
        for (const settle of this.pending.values()) settle({ error: { json: { message: `socket closed (${code})` } } });
        this.pending.clear();
        this.onStarted?.(new Error(`closed with ${code}`));
        if (!this.closing) this.error ??= `socket closed by the server (${code})`;
      });
    });
  }

  /** Starts `conversation.events`; resolves once the server has started it. */
  join(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onStarted = (error) => {
        this.onStarted = null;
        if (error) reject(error);
        else resolve();
      };
      this.ws!.send(JSON.stringify({ id: SUBSCRIPTION_ID, method: 'subscription', params: { input: { json: { conversationId: this.room } }, path: 'conversation.events' } }));
    });
  }

  close(): void {
    this.closing = true;
    this.ws?.terminate();
  }

  private call(method: 'query' | 'mutation', path: string, input: unknown): Promise<Frame> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve({ error: { json: { message: 'socket not open' } } });
    const id = ++this.nextId;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params: { input: superjson.serialize(input), path } }));
    });
  }

  private onFrame(data: Buffer): void {
    if (data.length === 4 && data.toString() === 'PING') {
      this.ws?.send('PONG');
      return;
    }
    let frame: Frame;
    try {
      frame = JSON.parse(String(data)) as Frame;
    } catch {
      this.error ??= 'unparsable frame';
      return;
    }
    if (typeof frame.id === 'number' && frame.id !== SUBSCRIPTION_ID) {
      const settle = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      settle?.(frame);
      return;
    }
    if (frame.id !== SUBSCRIPTION_ID) return;
    if (frame.error) {
      this.error ??= frame.error.json?.message ?? 'subscription error';
      this.onStarted?.(new Error(this.error));
      return;
    }
    if (frame.result?.type === 'started') {
      this.joinedAt = Date.now();
      this.onStarted?.();
      return;
    }
    if (frame.result?.type !== 'data') return;
    // The event's fields as JSON (dates stay strings): all a presence view needs.
    const event = (frame.result.data?.json as { data?: PresenceEvent } | undefined)?.data;
    if (event) this.apply(event);
  }

  private apply(event: PresenceEvent): void {
    if (event.type === 'subscribed') {
      const e = event as Extract<PresenceEvent, { type: 'subscribed' }>;
      this.members = new Set(e.members.map((m) => m.userId));
      this.complete = e.members.length >= e.memberCount;
      if (!this.complete) void this.page();
      this.check();
      return;
    }
    if (!PRESENCE_TYPES.has(event.type)) return;
    this.presenceFrames += 1;
    this.sincePaging?.push(event);
    this.change(event);
    this.check();
  }

  private change(event: PresenceEvent): void {
    if (event.type === 'user_joined') this.members.add((event as { userId: string }).userId);
    else if (event.type === 'user_left' || event.type === 'user_disconnected') this.members.delete((event as { userId: string }).userId);
    else if (event.type === 'presence_diff') {
      const e = event as Extract<PresenceEvent, { type: 'presence_diff' }>;
      for (const j of e.joins) this.members.add(j.userId);
      for (const l of e.leaves) this.members.delete(l.userId);
    }
  }

  private async page(): Promise<void> {
    this.sincePaging = [];
    const fetched = new Set<string>();
    let after: string | undefined;
    for (;;) {
      const frame = await this.call('query', 'conversation.presence', { conversationId: this.room, ...(after !== undefined && { after }) });
      const page = frame.result?.data?.json as { members: Array<{ userId: string }>; next: string | null } | undefined;
      if (frame.error || !page) {
        this.error ??= `presence page failed: ${frame.error?.json?.message ?? 'no data'}`;
        this.sincePaging = null;
        return;
      }
      for (const m of page.members) fetched.add(m.userId);
      if (page.next === null) break;
      after = page.next;
    }
    const replay = this.sincePaging ?? [];
    this.sincePaging = null;
    this.members = fetched;
    this.complete = true;
    for (const event of replay) this.change(event);
    this.check();
  }

  private check(): void {
    if (this.completeAt === null && this.viewComplete) this.completeAt = Date.now();
  }
}
