/**
 * A small typed event hub: `on` returns its own unsubscribe, listeners run synchronously in
 * registration order, and a throwing listener never stops the others (its error goes to `onError`).
 */
export class Listeners<TEvents extends Record<string, unknown>> {
  private readonly byName = new Map<keyof TEvents, Set<(payload: never) => void>>();

  constructor(private readonly onError: (error: unknown) => void = defaultOnError) {}

  on<TName extends keyof TEvents>(name: TName, listener: (payload: TEvents[TName]) => void): () => void {
    let set = this.byName.get(name);
    if (!set) {
      set = new Set();
      this.byName.set(name, set);
    }
    set.add(listener as (payload: never) => void);
    return () => {
      set.delete(listener as (payload: never) => void);
    };
  }

  emit<TName extends keyof TEvents>(name: TName, payload: TEvents[TName]): void {
    const set = this.byName.get(name);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as (p: TEvents[TName]) => void)(payload);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  /** How many listeners are registered, all names together (for leak tests). */
  count(): number {
    let n = 0;
    for (const set of this.byName.values()) n += set.size;
    return n;
  }
}

function defaultOnError(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}
