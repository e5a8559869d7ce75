// Slow consumers. uWS buffers what a socket cannot take yet; a socket whose buffer passes
// MAX_BACKPRESSURE_BYTES is closed with 4008 ("slow consumer") rather than growing without bound
// or, uWS's default, silently skipping events for it. The gateway checks a group's sockets after
// every event it hands to them and a socket after every answer it sends it, so a socket is
// closed before uWS would have to skip anything. uWS's own limit (twice this one plus the largest
// answer, so that the 4008 close frame still fits after one big answer) is set to close the
// socket: the backstop for sends made elsewhere (a resume's replay paces itself).
//
// A group's sockets are checked once per event-loop turn, not after every event: nothing drains
// within a turn, and a burst (a presence tick's joins, a Redis read of many events) cost one
// native call per socket per event. So that the backstop is never reached first, the check runs at
// once when the turn's events to the group reach half the limit: between two checks a socket
// gains less than half the limit plus one event.
export interface Buffered {
  buffered(): number;
}

export class SlowConsumers<S extends Buffered> {
  private readonly groups = new Map<string, Set<S>>();
  /** Groups that got events this turn, and those events' bytes (upper bound). */
  private pending = new Map<string, number>();
  private scheduled = false;

  constructor(
    private readonly limitBytes: number,
    private readonly onSlow: (ws: S) => void,
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

  /** An event of `bytes` (at most) went to the group's sockets: checked at the end of the turn, or now (see above). */
  published(group: string, bytes: number): void {
    const total = (this.pending.get(group) ?? 0) + bytes;
    if (total >= this.limitBytes / 2) {
      this.pending.delete(group);
      return this.checkGroup(group);
    }
    this.pending.set(group, total);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Checks every group that got events since the last flush. */
  flush(): void {
    this.scheduled = false;
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
