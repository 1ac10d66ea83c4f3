import { describe, expect, it } from 'vitest';
import type { MemberPresence, RoomEvent } from '../../src/domain/types.ts';
import { PresenceModel, type PresencePage } from './presence-model.ts';

/**
 * The typed client's presence model on its own, fed events by hand: the races an integration
 * test cannot hit on purpose (an event between a page's read and its answer, a new stream while
 * a page of the old one is in flight).
 */
const at = new Date(0);
const member = (userId: string, typing = false): MemberPresence => ({ userId, connections: 1, joinedAt: at, typing });
const subscribed = (members: string[], memberCount: number, resumed = false): RoomEvent => ({ type: 'subscribed', conversationId: 'r', at, resumed, members: members.map((u) => member(u)), memberCount });
const joined = (userId: string): RoomEvent => ({ type: 'user_joined', conversationId: 'r', at, userId });
const left = (userId: string): RoomEvent => ({ type: 'user_left', conversationId: 'r', at, userId });

/** Page requests answered by the test, in order. */
function pager() {
  const requests: Array<{ after: string | undefined; answer: (page: PresencePage) => void }> = [];
  const fetchPage = (after: string | undefined) => new Promise<PresencePage>((resolve) => requests.push({ after, answer: resolve }));
  return { requests, fetchPage };
}

const ids = (model: PresenceModel) => [...model.view.members.keys()].sort();
const settle = () => new Promise((r) => setImmediate(r));

describe('PresenceModel', () => {
  it('pages in what the snapshot did not list, and re-applies events that came while a page was in flight', async () => {
    const { requests, fetchPage } = pager();
    const model = new PresenceModel(fetchPage);
    const views: boolean[] = [];
    model.onChange((v) => views.push(v.complete));
    model.apply(subscribed(['a', 'b'], 4));
    expect(model.view).toMatchObject({ complete: false, memberCount: 4 });
    expect(requests).toHaveLength(1);
    // Meanwhile: c leaves and e arrives; the page was read before both.
    model.apply(left('c'));
    model.apply(joined('e'));
    requests[0]!.answer({ members: ['a', 'b', 'c'].map((u) => member(u)), memberCount: 4, next: 'c' });
    await settle();
    expect(requests).toHaveLength(2);
    expect(requests[1]!.after).toBe('c');
    requests[1]!.answer({ members: [member('d')], memberCount: 4, next: null });
    await settle();
    expect(ids(model)).toEqual(['a', 'b', 'd', 'e']);
    expect(model.view).toMatchObject({ complete: true, memberCount: 4 });
    expect(views.at(-1)).toBe(true);
  });

  it('a resume of a complete model keeps its members and takes the replay, without paging; a resync or an incomplete model pages again', async () => {
    const { requests, fetchPage } = pager();
    const model = new PresenceModel(fetchPage);
    model.onChange(() => undefined); // the application shows the list
    const everyone = Array.from({ length: 150 }, (_, i) => `u${String(i).padStart(3, '0')}`);
    model.apply(subscribed(everyone.slice(0, 100), 150));
    requests[0]!.answer({ members: everyone.map((u) => member(u)), memberCount: 150, next: null });
    await settle();
    expect(model.view).toMatchObject({ complete: true, memberCount: 150 });
    model.apply({ type: 'typing', conversationId: 'r', at, userId: 'u149', isTyping: true });
    expect(model.view.members.get('u149')!.typing).toBe(true);

    // The socket drops; the stream resumes where it was (the snapshot lists 100 of "now"), and
    // the replay brings what changed meanwhile: u000 left, z joined.
    model.apply(subscribed(everyone.slice(1, 100).concat('z'), 150, true));
    expect(requests).toHaveLength(1); // no page
    expect(model.view.complete).toBe(true);
    expect(model.view.members.get('u149')!.typing).toBe(false); // typing is not replayed
    model.apply(left('u000'));
    model.apply(joined('z'));
    expect(ids(model)).toEqual([...everyone.slice(1), 'z'].sort());
    expect(model.view).toMatchObject({ complete: true, memberCount: 150 });

    // A resync (resumed: false) starts over from the snapshot and pages.
    model.apply(subscribed(everyone.slice(0, 100), 150));
    expect(model.view.complete).toBe(false);
    expect(requests).toHaveLength(2);

    // A fresh model told `resumed` (an application's own lastEventId) has nothing to keep: it pages.
    const fresh = pager();
    const other = new PresenceModel(fresh.fetchPage);
    other.onChange(() => undefined);
    other.apply(subscribed(everyone.slice(0, 100), 150, true));
    expect(other.view.complete).toBe(false);
    expect(fresh.requests).toHaveLength(1);
  });

  it('drops the pages of a stream a newer `subscribed` replaced', async () => {
    const { requests, fetchPage } = pager();
    const model = new PresenceModel(fetchPage);
    model.onChange(() => undefined); // the application shows the list
    model.apply(subscribed(['a'], 3));
    model.apply(subscribed(['a', 'x'], 2)); // a resume: complete at once
    requests[0]!.answer({ members: ['a', 'b', 'c'].map((u) => member(u)), memberCount: 3, next: null });
    await settle();
    expect(ids(model)).toEqual(['a', 'x']);
    expect(model.view.complete).toBe(true);
  });

  it('pages nothing until the application looks, then once per stream', async () => {
    const { requests, fetchPage } = pager();
    const model = new PresenceModel(fetchPage);
    model.apply(subscribed(['a'], 3));
    model.apply(joined('d'));
    await settle();
    // 1,000 clients joining a big room that never show its members page nothing.
    expect(requests).toHaveLength(0);
    expect(model.view).toMatchObject({ complete: false, memberCount: 4 });
    expect(requests).toHaveLength(1);
    void model.view;
    expect(requests).toHaveLength(1);
    requests[0]!.answer({ members: ['a', 'b', 'c', 'd'].map((u) => member(u)), memberCount: 4, next: null });
    await settle();
    expect(model.view).toMatchObject({ complete: true, memberCount: 4 });
    // A later stream (a resume) with a partial snapshot pages again by itself: the list is wanted.
    model.apply(subscribed(['a'], 4));
    expect(requests).toHaveLength(2);
  });

  it('applies presence_diff net, and typing of a user whose join is still to come', () => {
    const model = new PresenceModel(() => Promise.reject(new Error('no pages needed')));
    model.apply(subscribed(['a', 'b'], 2));
    model.apply({ type: 'typing', conversationId: 'r', at, userId: 'c', isTyping: true });
    model.apply({ type: 'presence_diff', conversationId: 'r', at, joins: [{ userId: 'c', name: 'Cee' }, { userId: 'd' }], leaves: [{ userId: 'a', reason: 'disconnected' }] });
    expect(ids(model)).toEqual(['b', 'c', 'd']);
    expect(model.view.members.get('c')).toEqual({ userId: 'c', name: 'Cee', typing: true });
    expect(model.view.members.get('d')).toEqual({ userId: 'd', typing: false });
    expect(model.view.memberCount).toBe(3);
    model.apply(left('c'));
    model.apply(joined('c'));
    expect(model.view.members.get('c')?.typing).toBe(false); // leaving turned it off
  });

  it('waits out a page refused with retryAfterMs and asks for the same page again, however often, and ends complete', async () => {
    const asked: Array<string | undefined> = [];
    const refusedFor = new Map<string, number>();
    const errors: unknown[] = [];
    const tooMany = () => Object.assign(new Error('too many reads; retry in 1 ms (READ_RATE_PER_SEC)'), { data: { code: 'TOO_MANY_REQUESTS', retryAfterMs: 1 } });
    const pages: Record<string, PresencePage> = {
      first: { members: ['a', 'b'].map((u) => member(u)), memberCount: 6, next: 'b' },
      b: { members: ['c', 'd'].map((u) => member(u)), memberCount: 6, next: 'd' },
      d: { members: ['e', 'f'].map((u) => member(u)), memberCount: 6, next: null },
    };
    const model = new PresenceModel(async (after) => {
      asked.push(after);
      const key = after ?? 'first';
      // Each page is refused twice before it is served: six refusals, twice the other failures a model tolerates.
      const refused = refusedFor.get(key) ?? 0;
      if (refused < 2) {
        refusedFor.set(key, refused + 1);
        throw tooMany();
      }
      return pages[key]!;
    }, (error) => errors.push(error));
    const complete = new Promise<void>((resolve) => model.onChange((view) => view.complete && resolve()));
    model.apply(subscribed(['a'], 6));
    await complete;
    expect(model.view).toMatchObject({ complete: true, memberCount: 6 });
    expect(ids(model)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(errors).toEqual([]);
    expect(asked).toEqual([undefined, undefined, undefined, 'b', 'b', 'b', 'd', 'd', 'd']);
  });
});
