// Uploads are admitted at a byte rate. Receiving a large frame (a file sent as base64 in a
// `create`) costs the event loop tens of milliseconds (the copy, `JSON.parse`, the checks, the
// store's parameters), time every other socket of the node waits; back to back, a few clients
// uploading could stall everyone. So every frame of UPLOAD_FRAME_BYTES or more (no text frame is
// that large at the default MAX_BODY_CHARS: in practice only files) takes its bytes from two
// byte-rate buckets, the node's (MAX_UPLOAD_BYTES_PER_SECOND, shared with the server API's
// request bodies) and its user's (MAX_USER_UPLOAD_BYTES_PER_SECOND; per remote address for a
// connection without a user). Each bucket holds two seconds of its rate: a lone file goes at
// once; past that an upload waits its turn (its socket's later frames wait behind it, so order
// is kept), and one whose turn is more than UPLOAD_MAX_WAIT_MS away is refused with
// `rate_limited` (retry later, with the same request_id), so a client that uploads faster than
// the budget is told so and the node never queues more than a couple of seconds of uploads.
//
// The defaults (8 MiB/s per node, 4 MiB/s per user) are set by memory more than by CPU: a 5 MiB
// file costs the node ~30 ms of CPU but leaves tens of MB of garbage behind (the frame's text,
// the parsed string, the decoded bytes, the store's parameters), and at 16 MiB/s the hostile mix
// with large uploads took the node's RSS past the Deployment's 512 MiB (bench/performance-log.md).
// The rate bounds that garbage per second, not the RSS it leads to: that is not bounded yet.
// Smaller frames are never delayed by it (they are bounded by the frame rates).
//
// Guarantee: over any interval of T seconds the node starts handling at most
// rate x (T + 2 s) bytes of uploads (plus one upload), and a user at most their own rate likewise.

/** Frames at least this large count as uploads. */
export const UPLOAD_FRAME_BYTES = 64 * 1024;
/** An upload whose turn is further away than this is refused instead of waiting. */
export const UPLOAD_MAX_WAIT_MS = 2_000;
/** A bucket holds this much time of its rate: the burst that goes without waiting. */
export const UPLOAD_BURST_MS = 2_000;

/**
 * A byte-rate bucket (GCRA: the "theoretical arrival time" of the bytes taken so far). Bytes
 * taken may go at `turn`; `give` returns bytes of a turn that was taken but not used.
 */
export class ByteRate {
  /** When everything taken so far has been paid for at the rate (ms, performance.now clock). */
  private paidAt = 0;

  constructor(readonly bytesPerSecond: number) {}

  /** When `bytes` taken now may go: `now` when the bucket holds them, later when it first has to refill. */
  turn(bytes: number, now: number): number {
    return Math.max(now, Math.max(this.paidAt, now) + this.cost(bytes) - UPLOAD_BURST_MS);
  }

  take(bytes: number, now: number): void {
    this.paidAt = Math.max(this.paidAt, now) + this.cost(bytes);
  }

  give(bytes: number): void {
    this.paidAt -= this.cost(bytes);
  }

  private cost(bytes: number): number {
    return (bytes * 1000) / this.bytesPerSecond;
  }
}

export type UploadTurn = { at: number } | { refused: "upload_rate" | "user_upload_rate"; waitMs: number };

/** The node's upload bucket, and the decision for one upload against it and its user's. */
export class UploadBudget {
  readonly node: ByteRate;

  constructor(bytesPerSecond: number) {
    this.node = new ByteRate(bytesPerSecond);
  }

  /**
   * Takes `bytes` from the node's bucket and `user`'s (when given) and says when they may go;
   * or, when that is more than UPLOAD_MAX_WAIT_MS away, takes nothing and names the bucket.
   */
  take(bytes: number, user: ByteRate | null, now: number): UploadTurn {
    const mine = user?.turn(bytes, now) ?? now;
    const node = this.node.turn(bytes, now);
    if (mine - now > UPLOAD_MAX_WAIT_MS) return { refused: "user_upload_rate", waitMs: Math.ceil(mine - now) };
    if (node - now > UPLOAD_MAX_WAIT_MS) return { refused: "upload_rate", waitMs: Math.ceil(node - now) };
    user?.take(bytes, now);
    this.node.take(bytes, now);
    return { at: Math.max(mine, node) };
  }

  /** Gives back a turn taken by `take` whose upload was dropped before it went (its socket closed). */
  give(bytes: number, user: ByteRate | null): void {
    user?.give(bytes);
    this.node.give(bytes);
  }
}
