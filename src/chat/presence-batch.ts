// Join and leave frames, held for one short tick and then published together, so that a connect
// storm does not cost each socket of a group one write per arrival. uWS writes everything
// published to a socket in one event-loop turn with one system call, so k joins of a group within
// a tick reach each of its sockets in one write instead of k.
//
// A busy group is held longer: a group that published within the last `busyMs` holds its next
// frames until `busyMs` after that publish. In a storm each socket of the group then gets one
// write per `busyMs` rather than one per tick (the write to each socket, not the frames, is what
// a tick costs), while a lone join in a quiet group still goes out within the tick.
//
// Guarantees:
// - Nothing is merged, dropped or reshaped: every frame handed to `add` is published, as it is,
//   to its group, in the order `add` saw it (per group; a busy group's frames may go out after a
//   quiet group's added later).
// - Latency: a frame is published at most `max(tickMs, busyMs)` after `add`: within `tickMs` in a
//   group that has not published for `busyMs`; `tickMs` 0 publishes at once, as if there were no
//   batch. One node-wide timer, armed at the earliest publish due.
// - Memory: the frames waiting, and the time of each group's last publish for `busyMs`; `flush`
//   (the node stops) publishes them at once and `add` after `close` publishes at once too.
//
// The caller picks both well below the presence grace: a user's `leave` can be decided on
// another node, and it must not overtake that user's `join` still held here (see service.ts).

export type PublishFrames<F> = (group: string, frames: F[]) => void;

interface Held<F> {
  frames: F[];
  /** When they are to be published (performance.now() time). */
  due: number;
}

export class PresenceBatch<F> {
  private pending = new Map<string, Held<F>>();
  /** Groups that published within the last `busyMs`, and when (only with busyMs > tickMs). */
  private readonly lastPublished = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private closed = false;

  constructor(
    private readonly tickMs: number,
    private readonly publish: PublishFrames<F>,
    private readonly busyMs = 0,
  ) {}

  add(group: string, frame: F): void {
    if (this.tickMs === 0 || this.closed) return this.publish(group, [frame]);
    const held = this.pending.get(group);
    if (held) return void held.frames.push(frame);
    const now = performance.now();
    const last = this.lastPublished.get(group);
    // A quiet group joins the tick already running, or starts one.
    const due = last !== undefined && now - last < this.busyMs ? last + this.busyMs : Math.min(now + this.tickMs, this.timerAt);
    this.pending.set(group, { frames: [frame], due });
    if (due < this.timerAt) this.arm(due, now);
  }

  /** Publishes everything held now, group by group. */
  flush(): void {
    this.disarm();
    const pending = this.pending;
    this.pending = new Map();
    const now = performance.now();
    for (const [group, held] of pending) this.send(group, held.frames, now);
  }

  /** The node stops: what is held goes out now, and later frames are not held. */
  close(): void {
    this.closed = true;
    this.flush();
    this.lastPublished.clear();
  }

  /** Groups with frames waiting. */
  get groups(): number {
    return this.pending.size;
  }

  /** The timer fired: publishes the groups that are due, and waits for the next one. */
  private due(): void {
    this.disarm();
    const now = performance.now();
    let next = Infinity;
    // Timers fire a little early or late; a millisecond early is on time.
    for (const [group, held] of this.pending) {
      if (held.due <= now + 1) {
        this.pending.delete(group);
        this.send(group, held.frames, now);
      } else next = Math.min(next, held.due);
    }
    for (const [group, at] of this.lastPublished) if (now - at >= this.busyMs) this.lastPublished.delete(group);
    if (next !== Infinity) this.arm(next, now);
  }

  private send(group: string, frames: F[], now: number): void {
    if (this.busyMs > this.tickMs) this.lastPublished.set(group, now);
    this.publish(group, frames);
  }

  private arm(at: number, now: number): void {
    this.disarm();
    this.timerAt = at;
    this.timer = setTimeout(() => this.due(), Math.max(0, at - now));
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}
