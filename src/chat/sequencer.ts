// Per-group ordering on each node. Stored events reach a node through the bus in publish order,
// which is not seq order: two nodes commit seq 5 and 6 and may publish them the other way
// round, and a Redis outage can drop payloads altogether. The sequencer hands a group's events
// to the sockets strictly in seq order with no gap and no repeat:
//   - the next expected seq is delivered at once, then any held successors;
//   - a seq below the expected one is a repeat and dropped;
//   - a seq above it is held for `gapWaitMs`; if the gap is still open then, the missing events
//     are read from the store (they are committed: the store commits a group's events in seq
//     order) and delivered in order.
// Payloads without a seq (typing, seen) pass straight through.
import { seqOf } from "./events.ts";

export type Payload = Uint8Array | string;
export type Deliver = (group: string, payload: Payload, seq: number | null) => void;
/** Serialised stored events with after < seq <= until (to the newest when until is absent), in order. */
export type FetchEvents = (group: string, after: number, until?: number) => Promise<{ seq: number; payload: string }[]>;

export interface SequencerOptions {
  gapWaitMs: number;
  /** Held events beyond which the gap is repaired at once rather than after the wait. */
  maxHeld: number;
  retryMs: number;
}

interface GroupState {
  /** The next seq to deliver; null until the baseline is known. */
  next: number | null;
  held: Map<number, Payload>;
  /** Payloads that came before the baseline, replayed once it is set. */
  early: Payload[];
  timer: NodeJS.Timeout | null;
  repairing: boolean;
}

export class Sequencer {
  private readonly groups = new Map<string, GroupState>();

  constructor(
    private readonly deliver: Deliver,
    private readonly fetch: FetchEvents,
    private readonly opts: SequencerOptions,
    private readonly onError: (err: unknown, group: string) => void = () => {},
  ) {}

  /** Starts following a group; events are held until `start` gives the baseline. */
  prepare(group: string): object {
    this.stop(group);
    const state: GroupState = { next: null, held: new Map(), early: [], timer: null, repairing: false };
    this.groups.set(group, state);
    return state;
  }

  /** Sets the baseline (the group's last seq when the node subscribed). Ignored if the group was re-prepared since. */
  start(group: string, token: object, lastSeq: number): void {
    const state = this.groups.get(group);
    if (state !== token || !state || state.next !== null) return;
    state.next = lastSeq + 1;
    for (const p of state.early.splice(0)) this.accept(group, p);
  }

  stop(group: string): void {
    const state = this.groups.get(group);
    if (state?.timer) clearTimeout(state.timer);
    this.groups.delete(group);
  }

  /** The seq this node has delivered up to for a group (null when unknown). */
  delivered(group: string): number | null {
    const next = this.groups.get(group)?.next;
    return next == null ? null : next - 1;
  }

  accept(group: string, payload: Payload): void {
    const state = this.groups.get(group);
    if (!state) return;
    const seq = seqOf(payload);
    if (seq === null) return this.deliver(group, payload, null);
    if (state.next === null) {
      state.early.push(payload);
      return;
    }
    if (seq < state.next || state.held.has(seq)) return;
    if (seq === state.next) {
      this.emit(group, state, payload, seq);
      this.drain(group, state);
      return;
    }
    state.held.set(seq, payload);
    if (state.held.size > this.opts.maxHeld) void this.repair(group, state);
    else this.schedule(group, state, this.opts.gapWaitMs);
  }

  /** Reads whatever this node may have missed (after a bus reconnect) and delivers it in order. */
  async catchUp(group: string): Promise<void> {
    const state = this.groups.get(group);
    if (state && state.next !== null) await this.repair(group, state, true);
  }

  groupNames(): string[] {
    return [...this.groups.keys()];
  }

  private emit(group: string, state: GroupState, payload: Payload, seq: number): void {
    state.next = seq + 1;
    this.deliver(group, payload, seq);
  }

  private drain(group: string, state: GroupState): void {
    for (let p = state.held.get(state.next!); p !== undefined; p = state.held.get(state.next!)) {
      state.held.delete(state.next!);
      this.emit(group, state, p, state.next!);
    }
    if (state.held.size === 0 && state.timer) {
      clearTimeout(state.timer);
      state.timer = null;
    }
  }

  private schedule(group: string, state: GroupState, ms: number): void {
    if (state.timer) return;
    state.timer = setTimeout(() => {
      state.timer = null;
      void this.repair(group, state);
    }, ms);
  }

  private async repair(group: string, state: GroupState, toNewest = false): Promise<void> {
    if (state.repairing || state.next === null) return;
    if (!toNewest && state.held.size === 0) return;
    state.repairing = true;
    try {
      const until = toNewest ? undefined : Math.min(...state.held.keys()) - 1;
      const events = await this.fetch(group, state.next - 1, until);
      if (this.groups.get(group) !== state) return;
      for (const e of events) if (e.seq === state.next) this.emit(group, state, e.payload, e.seq);
      this.drain(group, state);
    } catch (err) {
      this.onError(err, group);
      if (this.groups.get(group) === state) {
        state.repairing = false;
        return this.schedule(group, state, this.opts.retryMs);
      }
    } finally {
      state.repairing = false;
    }
    if (state.held.size > 0 && this.groups.get(group) === state) this.schedule(group, state, this.opts.gapWaitMs);
  }
}
