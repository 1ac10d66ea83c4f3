/**
 * One presence model per joined conversation, whatever the wire says: built from the stream's
 * `subscribed` snapshot (reset on every one — a fresh join, a resync — but a resume of a complete
 * model keeps its members and takes the replayed events, without paging), the single
 * presence events (`user_joined`, `user_left`, `user_disconnected`), batched `presence_diff`s and
 * `typing`. A snapshot lists at most 100 members (PRESENCE_SNAPSHOT_LIMIT) with the total count;
 * when it lists fewer than there are, the model pages `conversation.presence` until it has them
 * all — from the first time the application looks (`presence`, `onPresence`), not on every
 * join: 1,000 clients joining a room of 1,000 that never show a member list must not each page
 * the whole list (a million member entries serialized by the server for nothing). Presence events that arrive while a page is in flight are applied at once and again after
 * the pages are merged (a page may have been read before them). Every event sets a user's state
 * ("last event wins"), so applying one twice, or one a page already reflects, changes nothing.
 * A page refused with a wait (TOO_MANY_REQUESTS under READ_RATE_PER_SEC, say) is asked again after
 * it: the model pages at the server's pace and still ends complete.
 */
import type { MemberPresence, RoomEvent } from '../../src/domain/types.ts';
import { retryAfterOf, waitOut } from './retry-after.ts';

export interface PresenceMember {
  userId: string;
  name?: string;
  typing: boolean;
}

export interface PresenceView {
  /** Who is present, by user id. */
  members: ReadonlyMap<string, PresenceMember>;
  /** How many are present: `members.size` once complete, the server's count until then. */
  memberCount: number;
  /** False while the model still pages in members its snapshot did not list. */
  complete: boolean;
}

export interface PresencePage {
  members: MemberPresence[];
  memberCount: number;
  next: string | null;
}

type PresenceEvent = Extract<RoomEvent, { type: 'user_joined' | 'user_left' | 'user_disconnected' | 'presence_diff' | 'typing' }>;

export class PresenceModel {
  private members = new Map<string, PresenceMember>();
  /** Typing of users not (yet) listed: their join may still be in a pending diff. */
  private typingUnknown = new Set<string>();
  private serverCount = 0;
  private complete = true;
  /** Bumped by every `subscribed`: a page answer of an older stream is dropped. */
  private generation = 0;
  /** Presence events since the page requests started, re-applied once the pages are merged. */
  private sincePaging: PresenceEvent[] | null = null;
  private readonly listeners = new Set<(view: PresenceView) => void>();
  private cached: PresenceView | null = null;
  /** The application has looked: keep the list complete from now on. */
  private wanted = false;
  /** The stream generation whose pages were requested (once per `subscribed`). */
  private pagedFor = -1;
  /** A `subscribed` has been applied: the members are the room's as of the last event seen. */
  private seeded = false;

  constructor(
    /** One page of `conversation.presence` after `after`. */
    private readonly fetchPage: (after: string | undefined) => Promise<PresencePage>,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  get view(): PresenceView {
    this.want();
    this.cached ??= { members: new Map(this.members), memberCount: this.complete ? this.members.size : Math.max(this.serverCount, this.members.size), complete: this.complete };
    return this.cached;
  }

  /** Registers the change callback; returns its remover. */
  onChange(listener: (view: PresenceView) => void): () => void {
    this.want();
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Feeds one event of the stream (others are ignored). */
  apply(event: RoomEvent): void {
    if (event.type === 'subscribed') {
      this.generation += 1;
      if (event.resumed && this.seeded && this.complete) {
        this.resumed(event);
        return;
      }
      this.seeded = true;
      this.members = new Map(event.members.map((m) => [m.userId, member(m.userId, m.name, m.typing)]));
      this.typingUnknown.clear();
      this.serverCount = event.memberCount;
      this.complete = event.members.length >= event.memberCount;
      this.sincePaging = null;
      this.pageIfWanted();
      this.changed();
      return;
    }
    if (!isPresenceEvent(event)) return;
    this.sincePaging?.push(event);
    if (this.change(event)) this.changed();
  }

  /**
   * A resume the server honoured, of a model that was complete: its members are the room's as of
   * the resume point, and the replay that follows brings every stored presence change since —
   * so it stays complete without a page. (Paging again after every reconnect would cost a big
   * room's full member list per client at every rolling deploy.) Typing is not stored, so only
   * the snapshot's typing flags are kept, for the members it lists.
   */
  private resumed(event: Extract<RoomEvent, { type: 'subscribed' }>): void {
    const typingNow = new Map(event.members.map((m) => [m.userId, m.typing]));
    for (const [userId, m] of this.members) {
      const typing = typingNow.get(userId) ?? false;
      if (m.typing !== typing) this.members.set(userId, { ...m, typing });
    }
    this.typingUnknown.clear();
    this.serverCount = this.members.size;
    this.sincePaging = null;
    this.changed();
  }

  private want(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.pageIfWanted();
  }

  private pageIfWanted(): void {
    if (!this.wanted || this.complete || this.pagedFor === this.generation) return;
    this.pagedFor = this.generation;
    void this.page(this.generation);
  }

  private async page(generation: number): Promise<void> {
    this.sincePaging = [];
    const fetched = new Map<string, PresenceMember>();
    let after: string | undefined;
    let count = 0;
    for (let failures = 0; ; ) {
      let page: PresencePage;
      try {
        page = await this.fetchPage(after);
      } catch (error) {
        if (generation !== this.generation) return;
        // A refusal that names a wait (the per-user read rate, a cluster outage) changed nothing:
        // wait it out and ask for the same page again, however often — the view must end complete.
        const retryAfter = retryAfterOf(error);
        if (retryAfter !== undefined) {
          await waitOut(retryAfter);
          if (generation !== this.generation) return;
          continue;
        }
        failures += 1;
        if (failures > 3) {
          this.sincePaging = null;
          this.onError(error); // stays incomplete until the next `subscribed`
          return;
        }
        // Unref'd: a closed client's failing pages must not keep a process alive.
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** failures).unref?.());
        if (generation !== this.generation) return;
        continue;
      }
      if (generation !== this.generation) return; // a newer stream reset the model and pages itself
      for (const m of page.members) fetched.set(m.userId, member(m.userId, m.name, m.typing));
      count = page.memberCount;
      if (page.next === null) break;
      after = page.next;
    }
    const replay = this.sincePaging ?? [];
    this.sincePaging = null;
    this.members = fetched;
    this.serverCount = count;
    this.complete = true;
    for (const event of replay) this.change(event);
    this.changed();
  }

  /** Applies one presence event; true when something changed. */
  private change(event: PresenceEvent): boolean {
    switch (event.type) {
      case 'user_joined':
        return this.join(event.userId, event.name);
      case 'user_left':
      case 'user_disconnected':
        return this.leave(event.userId);
      case 'presence_diff': {
        let changed = false;
        for (const j of event.joins) changed = this.join(j.userId, j.name) || changed;
        for (const l of event.leaves) changed = this.leave(l.userId) || changed;
        return changed;
      }
      case 'typing': {
        const m = this.members.get(event.userId);
        if (!m) {
          if (event.isTyping) this.typingUnknown.add(event.userId);
          else this.typingUnknown.delete(event.userId);
          return false;
        }
        if (m.typing === event.isTyping) return false;
        this.members.set(event.userId, { ...m, typing: event.isTyping });
        return true;
      }
    }
  }

  private join(userId: string, name: string | undefined): boolean {
    const existing = this.members.get(userId);
    if (existing && existing.name === name) return false;
    const typing = existing?.typing ?? this.typingUnknown.delete(userId);
    if (!existing && !this.complete) this.serverCount += 1;
    this.members.set(userId, member(userId, name ?? existing?.name, typing));
    return true;
  }

  private leave(userId: string): boolean {
    this.typingUnknown.delete(userId);
    if (!this.members.delete(userId)) return false;
    if (!this.complete) this.serverCount = Math.max(0, this.serverCount - 1);
    return true;
  }

  private changed(): void {
    this.cached = null;
    if (this.listeners.size === 0) return;
    const view = this.view;
    for (const listener of this.listeners) listener(view);
  }
}

function member(userId: string, name: string | undefined, typing: boolean): PresenceMember {
  return { userId, ...(name !== undefined && { name }), typing };
}

function isPresenceEvent(event: RoomEvent): event is PresenceEvent {
  return event.type === 'user_joined' || event.type === 'user_left' || event.type === 'user_disconnected' || event.type === 'presence_diff' || event.type === 'typing';
}
