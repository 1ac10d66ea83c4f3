/**
 * Acknowledged sends and their delivery reports. A partial or failed report is *explained* when
 * every missing user was dropped, restarted, paused or out of the room at some point while the
 * report was being made (disruptions.ts); otherwise it is a finding.
 */
import type { DeliveryReport, PendingDeliveryReport } from '../../src/domain/types.ts';
import type { Disruptions } from './disruptions.ts';
import type { Finding, Tally } from './tally.ts';

interface PendingAck {
  room: string;
  sender: string;
  sentAt: number;
}

export interface AckLedgerOptions {
  ackTimeoutMs: number;
  disruptions: Disruptions;
  tally(): Tally;
  finding(f: Omit<Finding, 'atS'>): void;
  /** Reads a report through the sender's current client (null: the sender has none right now). */
  query(sender: string, messageId: string): Promise<DeliveryReport | PendingDeliveryReport> | null;
}

export class AckLedger {
  private readonly pending = new Map<string, PendingAck>();

  constructor(private readonly options: AckLedgerOptions) {}

  get size(): number {
    return this.pending.size;
  }

  add(messageId: string, room: string, sender: string, sentAt: number): void {
    this.pending.set(messageId, { room, sender, sentAt });
  }

  /** A `message_delivered` event (or a queried report); repeats of a known report are ignored. */
  report(report: DeliveryReport, byQuery = false): void {
    const entry = this.pending.get(report.messageId);
    if (!entry) return;
    this.pending.delete(report.messageId);
    const tally = this.options.tally();
    if (byQuery) tally.reportsByQuery += 1;
    switch (report.status) {
      case 'delivered':
        tally.reportsDelivered += 1;
        return;
      case 'partial':
        tally.reportsPartial += 1;
        break;
      case 'failed':
        tally.reportsFailed += 1;
        if (report.expected.length === 0) {
          tally.reportsNoRecipients += 1;
          return;
        }
        break;
    }
    // Explained when each missing user was disrupted while the report was being made.
    const to = entry.sentAt + this.options.ackTimeoutMs + 1000;
    const unexplained = report.missing.filter((user) => !this.options.disruptions.touched(user, entry.room, entry.sentAt - 1000, to));
    if (unexplained.length > 0) {
      tally.reportsUnexplained += 1;
      this.options.finding({ kind: 'unexplained-report', room: entry.room, user: unexplained.join(','), seq: -1, detail: `${report.status} report ${report.messageId}: missing ${report.missing.join(',')}` });
    }
  }

  /**
   * Reports that never arrived as an event (the sender was restarting or had left the room) are
   * read with `message.deliveryStatus` a little after the timeout (at once with `now: true`, when
   * the run drains); given up on `giveUpMs` after the timeout.
   */
  async sweep(now: number, options: { giveUpMs?: number; now?: boolean } = {}): Promise<void> {
    const giveUpMs = options.giveUpMs ?? 30_000;
    const due = [...this.pending].filter(([, e]) => options.now || now > e.sentAt + this.options.ackTimeoutMs + 2000);
    await Promise.all(
      due.map(async ([messageId, entry]) => {
        if (now > entry.sentAt + this.options.ackTimeoutMs + giveUpMs) {
          this.pending.delete(messageId);
          this.options.tally().reportsUnknown += 1;
          return;
        }
        const read = this.options.query(entry.sender, messageId);
        if (!read) return;
        const result = await read.catch(() => null);
        if (result && result.status !== 'pending') this.report(result, true);
      }),
    );
  }
}
