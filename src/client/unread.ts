// One group's unread count for this connection's user, exact on every device at once. Unread is
// the messages (create, reply) by others after the user's marker, not deleted. The view cannot
// count what it never loaded, so it starts from a snapshot the server counted, `{last_seq,
// read_seq, unread}` (a conversation list entry, the ack of a `read`, or a `read` event of the
// user's own marker from any of their devices), and adds what the group's stored events after
// `last_seq` change:
// - a create or reply by another user after the snapshot counts one more;
// - a delete after the snapshot of another user's message between the marker and `last_seq`
//   counts one less (delete events carry the deleted message's `message_seq` and `author`);
// - a marker at or past `last_seq` needs no snapshot: only messages after the snapshot are unread.
// The view has every stored event after the seq it started from (`from`), and keeps the few
// facts above for those events; a snapshot older than `from` cannot be completed, nor can one
// whose marker is not the user's marker now (a move heard without a count, such as the members
// list after a reconnect): then `needsRefresh` asks the view for a fresh one (a `read` that does
// not move the marker answers the count in its ack).
export interface UnreadSnapshot {
  /** The group's last seq the count was read at. */
  lastSeq: number;
  /** The user's marker the count was read at. */
  readSeq: number;
  unread: number;
}

interface Deleted {
  eventSeq: number;
  messageSeq: number;
  author: string;
}

/** Facts kept before they are folded away (each create, reply and delete after the newest usable seq). */
const MAX_FACTS = 2_000;

export class UnreadCounter {
  /** Every stored event after this seq is known here; null: not known yet (the first snapshot sets it). */
  private from: number | null = null;
  private base: UnreadSnapshot | null = null;
  /** Messages after `from` not deleted, seq to author. */
  private readonly created = new Map<number, string>();
  private deletes: Deleted[] = [];

  /** The seq the view starts from: its stored events after it are all applied here. */
  start(from: number): void {
    if (this.from === null) this.from = from;
  }

  /** The server's stream was lost (its database was reset): nothing known holds any more. */
  reset(): void {
    this.from = null;
    this.base = null;
    this.created.clear();
    this.deletes = [];
  }

  message(seq: number, author: string): void {
    this.created.set(seq, author);
  }

  deleted(eventSeq: number, messageSeq: number, author: string): void {
    this.created.delete(messageSeq);
    this.deletes.push({ eventSeq, messageSeq, author });
  }

  /**
   * A count from the server. Usable when the view knows every event after its `lastSeq`, and kept
   * unless the one held already is for the same marker and at least as recent. False: not usable
   * (older than what the view knows): ask for a fresh one.
   */
  snapshot(s: UnreadSnapshot): boolean {
    if (this.from === null) this.from = s.lastSeq;
    if (s.lastSeq < this.from) return false;
    const b = this.base;
    if (b && b.readSeq > s.readSeq) return true; // an older move: the one held is newer
    if (b && b.readSeq === s.readSeq && b.lastSeq >= s.lastSeq) return true;
    this.base = { ...s };
    return true;
  }

  /** Whether the count for `marker` needs a fresh snapshot: none usable, or one for another marker behind its last seq. */
  needsRefresh(marker: number): boolean {
    const b = this.base;
    if (b) return b.readSeq !== marker && marker < b.lastSeq;
    return this.from === null || marker < this.from;
  }

  /**
   * The unread count of `me` with their marker at `marker`; `fallback` when no count covers it
   * (until the one asked for comes).
   */
  count(me: string, marker: number, fallback: () => number): number {
    const b = this.base;
    if (b && marker < b.lastSeq) {
      // A marker that moved without a count (asked for: needsRefresh) keeps the last count for its
      // old marker until the fresh one comes: at most a few too many for a moment, never a number
      // made up from what happens to be loaded.
      let n = b.unread;
      for (const [seq, author] of this.created) if (seq > b.lastSeq && author !== me) n++;
      for (const d of this.deletes) if (d.eventSeq > b.lastSeq && d.messageSeq > b.readSeq && d.messageSeq <= b.lastSeq && d.author !== me) n--;
      this.fold(b.lastSeq);
      return Math.max(0, n);
    }
    if (this.from === null || marker < this.from) return fallback();
    let n = 0;
    for (const [seq, author] of this.created) if (seq > marker && author !== me) n++;
    this.fold(marker);
    return n;
  }

  /**
   * Past MAX_FACTS, forgets what no usable count needs any more: facts at or before `upTo`, the
   * newest seq a count starts from; snapshots older than it are refused from then on.
   */
  private fold(upTo: number): void {
    if (this.created.size + this.deletes.length <= MAX_FACTS || this.from === null || upTo <= this.from) return;
    for (const seq of this.created.keys()) if (seq <= upTo) this.created.delete(seq);
    this.deletes = this.deletes.filter((d) => d.eventSeq > upTo);
    this.from = upTo;
    if (this.base && this.base.lastSeq < upTo) this.base = null;
  }
}
