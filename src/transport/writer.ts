/** What the writer needs of a connection: where its bytes go and a slot for this turn's frames. */
export interface Writable {
  /**
   * Writes this turn's frames out: a WebSocket to the TCP socket the upgrade came on (`ws`
   * frames onto the same one), an SSE stream to its HTTP response (chunked).
   */
  writeOut(data: Buffer): void;
  /** Open: frames may still be written. */
  isOpen(): boolean;
  pendingFrames: Buffer[] | null;
}

/**
 * Coalesced writes: the frames written to one connection in one loop turn leave together, in
 * one `write` (one syscall), when the turn ends (setImmediate). WebSocket frames are complete
 * frames written to the upgrade's socket beside `ws`'s own writes (close and protocol pong
 * frames); permessage-deflate is off, so `ws` writes each of its frames synchronously and whole,
 * and frames never interleave. SSE events go to their response as one chunk per turn. One
 * writer per transport of a server: two servers in a process share nothing.
 */
export class FrameWriter {
  private dirty: Writable[] = [];
  private scheduled = false;
  private readonly flushBound = () => this.flush();

  write(to: Writable, frame: Buffer): void {
    const pending = to.pendingFrames;
    if (pending) {
      pending.push(frame); // open when its first frame was queued; flush checks again
      return;
    }
    if (!to.isOpen()) return;
    to.pendingFrames = [frame];
    this.dirty.push(to);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Writes out everything queued (also called before a deliberate close, so replies go first). */
  flush(): void {
    this.scheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const to of dirty) {
      const frames = to.pendingFrames;
      to.pendingFrames = null;
      // Closing: dropped; the client resumes from the last event id it received.
      if (!frames || !to.isOpen()) continue;
      to.writeOut(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    }
  }
}
