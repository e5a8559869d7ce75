// The node's most recent stored events of each group it follows, kept in memory so that a short
// resume (a client a few events behind, as after a rebalance move, a drain or a dropped phone)
// is served without a database read or a replay slot. A group's events here are exactly what the
// node delivered, as it delivered them: one contiguous run of seqs ending at the node's delivered
// seq (the sequencer hands them over in seq order with no gap; anything else starts the run again).
//
// A replay that had to read the database leaves what it read here when it adjoins what is kept,
// so a wave of resumes of one group (a rebalance move, a node's first clients of a group) reads
// the database once rather than once per client.
//
// Bounded in bytes twice: per group (the group's oldest events go first) and over the node (the
// node's oldest events go first, whatever their group). Payloads are copied into their own memory,
// so a bus payload that is a view of a larger read buffer is never kept alive by this cache.
//
// What a replay from here sends must equal what one from the database sends: events in their live
// shapes with the message's current state. An update or delete changes the state of an earlier
// event's message, so a group's events before its newest update or delete are not served from
// here (the replay reads those from the database). Creates and replies change no other message.
import type { Payload } from "./sequencer.ts";

interface Run {
  /** The seq of entries[head]; with no entries, the seq the run expects next. */
  first: number;
  entries: Payload[];
  sizes: number[];
  head: number;
  bytes: number;
  /** Events with a seq below this may show a message's older state: not served. */
  staleBelow: number;
  dropped: boolean;
}

const byteLength = (p: Payload) => (typeof p === "string" ? Buffer.byteLength(p) : p.byteLength);
/** Stored events start with `{"operation":"<op>",` (src/chat/events.ts). */
const CHANGES_EARLIER = /^\{"operation":"(update|delete)"/;
const head = (p: Payload) => (typeof p === "string" ? p.slice(0, 24) : Buffer.from(p.buffer, p.byteOffset, Math.min(24, p.byteLength)).toString("latin1"));

export class RecentEvents {
  private readonly runs = new Map<string, Run>();
  /** Every event kept, oldest first over the whole node: [run, seq]. Entries whose event went already are skipped. */
  private order: [Run, number][] = [];
  private orderHead = 0;
  private kept = 0;
  private usedBytes = 0;

  constructor(
    /** Bytes kept per group (RESUME_MEMORY_GROUP_BYTES); 0 keeps nothing. */
    readonly groupBytes: number,
    /** Bytes kept over the node (RESUME_MEMORY_BYTES); 0 keeps nothing. */
    readonly totalBytes: number,
  ) {}

  get bytes(): number {
    return this.usedBytes;
  }

  /** Events kept now, over the node. */
  get size(): number {
    return this.kept;
  }

  /** The node delivered a stored event of `group`: kept, if it fits. */
  push(group: string, seq: number, payload: Payload): void {
    if (this.groupBytes <= 0 || this.totalBytes <= 0) return;
    let run = this.runs.get(group);
    if (!run) this.runs.set(group, (run = { first: seq, entries: [], sizes: [], head: 0, bytes: 0, staleBelow: 0, dropped: false }));
    if (seq !== run.first + (run.entries.length - run.head)) this.restart(run, seq); // not the next one: a new run starts here
    if (CHANGES_EARLIER.test(head(payload))) run.staleBelow = seq;
    const bytes = byteLength(payload);
    if (bytes > this.groupBytes || bytes > this.totalBytes) {
      // Too large to keep: the run starts again after it.
      this.restart(run, seq + 1);
      return;
    }
    while (run.bytes + bytes > this.groupBytes) this.shift(run);
    while (this.usedBytes + bytes > this.totalBytes) {
      if (this.evictOldest()) continue;
      this.restart(run, seq + 1); // nothing left to evict (cannot happen while the books are right): keep nothing rather than too much
      return;
    }
    if (run.entries.length === run.head) run.first = seq; // emptied by eviction: starts at this one
    run.entries.push(typeof payload === "string" ? payload : new Uint8Array(payload));
    run.sizes.push(bytes);
    run.bytes += bytes;
    this.usedBytes += bytes;
    this.kept++;
    this.order.push([run, seq]);
  }

  /**
   * Older events of `group` a replay read from the database (in seq order, in their current
   * state): the ones just before what is kept (before `next`, the seq the node delivers next,
   * when nothing is) are kept too, newest first, as far as the group's and the node's bytes allow
   * without evicting anything, and counted as the node's oldest. So the resumes of a group that
   * arrive together (a rebalance wave) read the database once, not once each. Events before the
   * group's newest update or delete are not kept: the read may predate it.
   */
  prepend(group: string, events: readonly { seq: number; payload: Payload }[], next: number): void {
    if (this.groupBytes <= 0 || this.totalBytes <= 0 || events.length === 0) return;
    let run = this.runs.get(group);
    if (!run) this.runs.set(group, (run = { first: next, entries: [], sizes: [], head: 0, bytes: 0, staleBelow: 0, dropped: false }));
    const first = run.first;
    // The events adjoining the run: contiguous up to first - 1.
    const end = events.findIndex((e) => e.seq === first - 1);
    if (end < 0) return;
    const taken: { seq: number; payload: Payload; bytes: number }[] = [];
    let bytes = 0;
    for (let i = end, seq = first - 1; i >= 0 && events[i]!.seq === seq && seq >= run.staleBelow; i--, seq--) {
      const b = byteLength(events[i]!.payload);
      if (run.bytes + bytes + b > this.groupBytes || this.usedBytes + bytes + b > this.totalBytes) break;
      taken.push({ seq, payload: events[i]!.payload, bytes: b });
      bytes += b;
    }
    if (taken.length === 0) return;
    taken.reverse();
    run.entries = [...taken.map((e) => (typeof e.payload === "string" ? e.payload : new Uint8Array(e.payload))), ...run.entries.slice(run.head)];
    run.sizes = [...taken.map((e) => e.bytes), ...run.sizes.slice(run.head)];
    run.head = 0;
    run.first = taken[0]!.seq;
    run.bytes += bytes;
    this.usedBytes += bytes;
    this.kept += taken.length;
    const r = run;
    this.order = [...taken.map((e): [Run, number] => [r, e.seq]), ...this.order.slice(this.orderHead)];
    this.orderHead = 0;
  }

  /** The payload of `group`'s event `seq`, as the node delivered it, if kept and current; undefined otherwise. */
  get(group: string, seq: number): Payload | undefined {
    const run = this.runs.get(group);
    if (!run || seq < run.first || seq < run.staleBelow) return undefined;
    return run.entries[run.head + seq - run.first];
  }

  /** The node stopped following `group` (or follows it anew): its events go. */
  drop(group: string): void {
    const run = this.runs.get(group);
    if (!run) return;
    this.restart(run, 0);
    run.dropped = true;
    this.runs.delete(group);
  }

  private restart(run: Run, first: number): void {
    this.usedBytes -= run.bytes;
    this.kept -= run.entries.length - run.head;
    run.entries = [];
    run.sizes = [];
    run.head = 0;
    run.bytes = 0;
    run.first = first;
    this.compactOrder();
  }

  /** Removes the run's oldest event. */
  private shift(run: Run): void {
    const bytes = run.sizes[run.head]!;
    run.entries[run.head] = "";
    run.head++;
    run.first++;
    run.bytes -= bytes;
    this.usedBytes -= bytes;
    this.kept--;
    if (run.head > 64 && run.head * 2 > run.entries.length) {
      run.entries = run.entries.slice(run.head);
      run.sizes = run.sizes.slice(run.head);
      run.head = 0;
    }
    this.compactOrder();
  }

  /** Removes the node's oldest event still kept; false when none is. */
  private evictOldest(): boolean {
    while (this.orderHead < this.order.length) {
      const [run, seq] = this.order[this.orderHead]!;
      this.order[this.orderHead++] = undefined as never;
      // Within a run events are kept in seq order, so the node's oldest event of a run is its first.
      if (!run.dropped && seq === run.first && run.entries.length > run.head) {
        this.shift(run);
        return true;
      }
    }
    return false;
  }

  /** Keeps the order list within twice the events kept (entries of events gone are skipped lazily). */
  private compactOrder(): void {
    const listed = this.order.length - this.orderHead;
    if (listed <= 1024 || listed <= 2 * this.kept) return;
    this.order = this.order.slice(this.orderHead).filter(([run, seq]) => !run.dropped && seq >= run.first && seq < run.first + run.entries.length - run.head);
    this.orderHead = 0;
  }
}
