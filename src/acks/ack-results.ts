/**
 * The only four answers an ack can get, as shared frozen objects and as the JSON text of each:
 * the hot ack path hands out these instead of allocating an object (and a serialization) per
 * ack. `Object.is` identifies them, so the transport can write the pre-serialized text.
 */

/** What `message.ack` answers for one ack. */
export interface AckResult {
  readonly accepted: boolean;
  readonly duplicate: boolean;
  readonly late: boolean;
}

/** Counted now. */
export const ACK_ACCEPTED: AckResult = Object.freeze({ accepted: true, duplicate: false, late: false });
/** Counted before (a repeat, from this or another connection of the user). */
export const ACK_DUPLICATE: AckResult = Object.freeze({ accepted: true, duplicate: true, late: false });
/** After the report (or past the deadline): not counted, and the report did not count it either. */
export const ACK_LATE: AckResult = Object.freeze({ accepted: false, duplicate: false, late: true });
/** After the report, which had counted this user's earlier ack. */
export const ACK_LATE_DUPLICATE: AckResult = Object.freeze({ accepted: false, duplicate: true, late: true });

/** The shared answer for a late ack, by whether the report counted the user. */
export function lateAck(duplicate: boolean): AckResult {
  return duplicate ? ACK_LATE_DUPLICATE : ACK_LATE;
}

const JSON_OF = new Map<AckResult, string>([ACK_ACCEPTED, ACK_DUPLICATE, ACK_LATE, ACK_LATE_DUPLICATE].map((r) => [r, JSON.stringify(r)]));

/** The JSON text of an ack result: pre-serialized for the four shared answers. */
export function ackResultJson(result: AckResult): string {
  return JSON_OF.get(result) ?? JSON.stringify({ accepted: result.accepted, duplicate: result.duplicate, late: result.late });
}
