// Slow consumers. uWS buffers what a socket cannot take yet; a socket whose buffer passes
// MAX_BACKPRESSURE_BYTES is closed with 4008 ("slow consumer") rather than growing without bound
// or, uWS's default, silently skipping events for it. The gateway checks a group's sockets soon after
// every event it hands to them (below) and a socket after every answer it sends it, so a socket is
// closed before uWS would have to skip anything. uWS's own limit (twice this one plus the largest
// answer, so that the 4008 close frame still fits after one big answer) is set to close the
// socket: the backstop for sends made elsewhere (a resume's replay paces itself).
//
// A group's sockets are checked at most every CHECK_EVERY_MS, not after every event: a check reads
// every socket of the group (one native call each), and a group that gets an event per loop turn
// (typing: 400 events/s over 20 groups of 50) paid 50 calls and a scheduled callback per event.
// So that the backstop is never reached first, the check runs at once when the events to the group
// since its last check reach half the limit: between two checks a socket gains less than half the
// limit plus one event, however fast events come. A socket over the limit in a quiet group is closed
// within CHECK_EVERY_MS.
export interface Buffered {
  buffered(): number;
}

/** The longest a group that got events waits for its check. */
export const CHECK_EVERY_MS = 100;

export class SlowConsumers<S extends Buffered> {
  private readonly groups = new Map<string, Set<S>>();
  /** Groups that got events since their last check, and those events' bytes (upper bound). */
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly limitBytes: number,
    private readonly onSlow: (ws: S) => void,
    private readonly everyMs = CHECK_EVERY_MS,
  ) {}

  watch(group: string, ws: S): void {
    let set = this.groups.get(group);
    if (!set) this.groups.set(group, (set = new Set()));
    set.add(ws);
  }

  unwatch(group: string, ws: S): void {
    const set = this.groups.get(group);
    if (set?.delete(ws) && set.size === 0) this.groups.delete(group);
  }

  /** An event of `bytes` (at most) went to the group's sockets: checked within `everyMs`, or now (see above). */
  published(group: string, bytes: number): void {
    const total = (this.pending.get(group) ?? 0) + bytes;
    if (total >= this.limitBytes / 2) {
      this.pending.delete(group);
      return this.checkGroup(group);
    }
    this.pending.set(group, total);
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.everyMs);
      this.timer.unref();
    }
  }

  /** Checks every group that got events since its last check. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const groups = this.pending;
    this.pending = new Map();
    for (const group of groups.keys()) this.checkGroup(group);
  }

  /** Checks every socket of the group now. */
  private checkGroup(group: string): void {
    const set = this.groups.get(group);
    if (set) for (const ws of set) this.check(ws);
  }

  /** After a frame went to one socket. */
  check(ws: S): void {
    if (ws.buffered() > this.limitBytes) this.onSlow(ws);
  }
}
