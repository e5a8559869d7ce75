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
//
// Most of the time no socket holds anything, and then no check is needed at all (a check every
// 100 ms was a timer wake-up and 1,000 native calls a tenth of a second under the typing bench):
// once a check has read every watched socket empty, the node counts `exposure`, the bytes of every
// group event published since (an upper bound on what any one socket, in however many groups, can
// have gained), and checks nothing while exposure stays under half the limit: no socket can be
// over the limit then. Anything else sent to a socket (an answer, a replay, an error: `directSends`
// moves) or a socket starting to be watched ends that state, as does exposure reaching half the
// limit; then every watched socket is checked within CHECK_EVERY_MS and the checks go on as above
// until one finds every socket empty again with nothing but group events sent meanwhile. (uWS sends
// a published event at the end of the loop turn: the bytes of the events a check covered count as
// exposure already, in case some were still on their way.)
export interface Buffered {
  buffered(): number;
}

/** The longest a group that got events waits for its check. */
export const CHECK_EVERY_MS = 100;
/** A check reads every watched socket (quiet groups included) to find them all empty at most once every this many check intervals. */
const SWEEP_EVERY = 10;

export class SlowConsumers<S extends Buffered> {
  private readonly groups = new Map<string, Set<S>>();
  private watched = 0;
  /** Groups that got events since their last check, and those events' bytes (upper bound). */
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  /** Bytes of group events since every watched socket was read empty; Infinity when not known empty. */
  private exposure = Infinity;
  /** The next timed check reads every watched socket. */
  private sweepAll = false;
  private lastSweep = -Infinity;
  /** directSends() at the last timed check. */
  private sendsAtCheck = -1;
  /** Bytes of the events that checks at once covered since the last timed check (some may still be on their way). */
  private checked = 0;

  constructor(
    private readonly limitBytes: number,
    private readonly onSlow: (ws: S) => void,
    private readonly everyMs = CHECK_EVERY_MS,
    /** How many frames the node has sent to one socket, not to a group (answers, replays, errors): a count that only grows. */
    private readonly directSends: () => number = () => 0,
  ) {}

  watch(group: string, ws: S): void {
    let set = this.groups.get(group);
    if (!set) this.groups.set(group, (set = new Set()));
    if (!set.has(ws)) this.watched++;
    set.add(ws);
    this.exposure = Infinity; // it may hold something already
  }

  unwatch(group: string, ws: S): void {
    const set = this.groups.get(group);
    if (set?.delete(ws)) {
      this.watched--;
      if (set.size === 0) this.groups.delete(group);
    }
  }

  /** An event of `bytes` (at most) went to the group's sockets: checked within `everyMs`, or now (see above). */
  published(group: string, bytes: number): void {
    if (this.exposure !== Infinity) {
      if (this.sendsAtCheck === this.directSends()) {
        this.exposure += bytes;
        if (this.exposure < this.limitBytes / 2) return; // no socket can be over the limit
      }
      // Known empty no more: every socket is checked within everyMs, and from here as above.
      this.exposure = Infinity;
      this.sweepAll = true;
      this.arm();
    }
    const total = (this.pending.get(group) ?? 0) + bytes;
    if (total >= this.limitBytes / 2) {
      this.pending.delete(group);
      this.checked += total;
      this.checkGroup(group);
      return;
    }
    this.pending.set(group, total);
    this.arm();
  }

  private arm(): void {
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.everyMs);
      this.timer.unref();
    }
  }

  /** Checks every group that got events since its last check (every watched socket when due), and finds out whether all are empty. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const groups = this.pending;
    this.pending = new Map();
    const sends = this.directSends();
    // Only group events went out since the last check: a check finding every socket empty may end the checks.
    const onlyEvents = sends === this.sendsAtCheck;
    this.sendsAtCheck = sends;
    let covered = 0;
    let empty = true;
    let bytes = this.checked;
    this.checked = 0;
    for (const [group, n] of groups) {
      bytes += n;
      const r = this.checkGroup(group);
      covered += r.read;
      empty &&= r.empty;
    }
    const now = performance.now();
    if (this.sweepAll || (onlyEvents && empty && covered < this.watched && now - this.lastSweep >= this.everyMs * SWEEP_EVERY)) {
      this.sweepAll = false;
      this.lastSweep = now;
      for (const group of this.groups.keys()) {
        if (groups.has(group)) continue;
        const r = this.checkGroup(group);
        covered += r.read;
        empty &&= r.empty;
      }
    }
    if (onlyEvents && empty && covered >= this.watched) this.exposure = bytes;
  }

  /** Checks every socket of the group now: how many it read, and whether every one was empty. */
  private checkGroup(group: string): { read: number; empty: boolean } {
    const set = this.groups.get(group);
    let read = 0;
    let empty = true;
    if (set) {
      for (const ws of set) {
        const b = ws.buffered();
        read++;
        if (b > 0) empty = false;
        if (b > this.limitBytes) this.onSlow(ws);
      }
    }
    return { read, empty };
  }

  /** After a frame went to one socket. */
  check(ws: S): void {
    if (ws.buffered() > this.limitBytes) this.onSlow(ws);
  }
}
