/**
 * The benchmark message body: 200 bytes of JSON-safe ASCII that carry, behind a marker, the
 * sender's index, a sequence number per (sender, room), the send time in nanoseconds on
 * CLOCK_MONOTONIC (`process.hrtime.bigint()`, relative to a base shared by every process of the
 * run, so it stays a safe integer) and the phase (0 warm-up, 1 measured). Receivers find the
 * marker in the raw frame and read the numbers without parsing the whole frame as JSON, so the
 * load generator stays cheap whatever the target's envelope looks like.
 */
export const BODY_BYTES = 200;
export const MARKER = 'BENCH|';
const MARKER_BUFFER = Buffer.from(MARKER);
const PIPE = 124; // '|'
const ZERO = 48;
const PAD = '.'.repeat(BODY_BYTES);

export interface BodyFields {
  sender: number;
  seq: number;
  /** Nanoseconds since the run's hrtime base. */
  sentNs: number;
  phase: number;
}

/** Nanoseconds since `base` (a `process.hrtime.bigint()` value shared by all processes). */
export function nowNs(base: bigint): number {
  return Number(process.hrtime.bigint() - base);
}

export function makeBody(fields: BodyFields): string {
  const head = `${MARKER}${fields.sender}|${fields.seq}|${fields.sentNs}|${fields.phase}|`;
  return head.length >= BODY_BYTES ? head : head + PAD.slice(head.length);
}

/** Reads the fields from a raw frame (Buffer); false when the frame carries no benchmark body. */
export function parseBodyFromBuffer(frame: Buffer, out: BodyFields): boolean {
  let i = frame.indexOf(MARKER_BUFFER);
  if (i < 0) return false;
  i += MARKER_BUFFER.length;
  const end = frame.length;
  let values = 0;
  let v = 0;
  for (; i < end && values < 4; i += 1) {
    const c = frame[i]!;
    if (c === PIPE) {
      if (values === 0) out.sender = v;
      else if (values === 1) out.seq = v;
      else if (values === 2) out.sentNs = v;
      else out.phase = v;
      values += 1;
      v = 0;
    } else {
      v = v * 10 + (c - ZERO);
    }
  }
  return values === 4;
}

/** The same for a body (or frame) already decoded to a string. */
export function parseBodyFromString(text: string, out: BodyFields): boolean {
  let i = text.indexOf(MARKER);
  if (i < 0) return false;
  i += MARKER.length;
  const end = text.length;
  let values = 0;
  let v = 0;
  for (; i < end && values < 4; i += 1) {
    const c = text.charCodeAt(i);
    if (c === PIPE) {
      if (values === 0) out.sender = v;
      else if (values === 1) out.seq = v;
      else if (values === 2) out.sentNs = v;
      else out.phase = v;
      values += 1;
      v = 0;
    } else {
      v = v * 10 + (c - ZERO);
    }
  }
  return values === 4;
}
