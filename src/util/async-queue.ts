/**
 * A single-consumer queue read with `for await`. Iteration ends as soon as `signal` aborts or
 * `end()` is called, even while the consumer is waiting: nothing here awaits a promise that
 * ignores the signal (see notes/trpc-v11.md §1.5).
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private head = 0;
  private wake: (() => void) | null = null;
  private ended = false;

  constructor(private readonly signal?: AbortSignal) {
    signal?.addEventListener('abort', () => this.end(), { once: true });
  }

  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  get length(): number {
    return this.items.length - this.head;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (true) {
      if (this.head < this.items.length) {
        const item = this.items[this.head]!;
        this.items[this.head] = undefined as T;
        this.head += 1;
        if (this.head === this.items.length) {
          this.items = [];
          this.head = 0;
        }
        yield item;
        continue;
      }
      if (this.ended || this.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }
}
