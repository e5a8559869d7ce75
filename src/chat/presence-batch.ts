// Join and leave frames, held for one short tick and then published together, so that a connect
// storm does not cost each socket of a group one write per arrival. uWS writes everything
// published to a socket in one event-loop turn with one system call, so k joins of a group within
// a tick reach each of its sockets in one write instead of k.
//
// Guarantees:
// - Nothing is merged, dropped or reshaped: every frame handed to `add` is published, as it is,
//   to its group, in the order `add` saw it (per group, and node-wide).
// - Latency: a frame is published at most `tickMs` after `add` (one node-wide timer, armed by
//   the first frame of a quiet node); `tickMs` 0 publishes at once, as if there were no batch.
// - Memory: only the frames of the current tick are held; `flush` (the node stops) publishes
//   them at once and `add` after `close` publishes at once too.
//
// The caller picks `tickMs` well below the presence grace: a user's `leave` can be decided on
// another node, and it must not overtake that user's `join` still held here (see service.ts).

export type PublishFrames<F> = (group: string, frames: F[]) => void;

export class PresenceBatch<F> {
  private pending = new Map<string, F[]>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly tickMs: number,
    private readonly publish: PublishFrames<F>,
  ) {}

  add(group: string, frame: F): void {
    if (this.tickMs === 0 || this.closed) return this.publish(group, [frame]);
    const frames = this.pending.get(group);
    if (frames) frames.push(frame);
    else this.pending.set(group, [frame]);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.tickMs);
      this.timer.unref();
    }
  }

  /** Publishes everything held now, group by group. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const pending = this.pending;
    this.pending = new Map();
    for (const [group, frames] of pending) this.publish(group, frames);
  }

  /** The node stops: what is held goes out now, and later frames are not held. */
  close(): void {
    this.closed = true;
    this.flush();
  }

  /** Groups with frames waiting for the tick. */
  get groups(): number {
    return this.pending.size;
  }
}
