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
// A rate bounds the bytes taken in per second, not the bytes held: a 5 MiB file is held from
// its frame's arrival until its store write is over (the frame's text, the parsed string, the
// decoded bytes, the driver's copy), and a slow database keeps more of them in flight at the same
// rate. So the node also bounds the upload bytes it holds at once (MAX_UPLOAD_INFLIGHT_BYTES,
// counted in frame bytes from arrival, a wait for its turn included, until the frame is answered):
// an upload that would pass it is refused with `rate_limited` at once (uWS cannot stop reading a
// socket, so refusing is the only way not to hold it). A lone upload always passes.
// (bench/performance-log.md, "Upload memory", has the figures behind both defaults.)
//
// Smaller frames are never delayed by either (they are bounded by the frame rates).
//
// Guarantee: over any interval of T seconds the node starts handling at most
// rate x (T + 2 s) bytes of uploads (plus one upload), and a user at most their own rate likewise;
// at no moment does it hold more than MAX_UPLOAD_INFLIGHT_BYTES of upload frames (or one upload).

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

export type UploadTurn = { at: number } | { refused: "upload_rate" | "user_upload_rate" | "upload_inflight"; waitMs: number };

/**
 * The node's upload bucket and its bytes in flight, and the decision for one upload against them
 * and its user's bucket. Every `take` that is not refused is ended by exactly one `give` (dropped
 * before it went: its turn is given back too) or `done` (handled).
 */
export class UploadBudget {
  readonly node: ByteRate;
  private held = 0;

  constructor(
    bytesPerSecond: number,
    /** MAX_UPLOAD_INFLIGHT_BYTES: upload bytes held at once (a lone upload always passes). */
    readonly maxInflightBytes: number = Infinity,
    private readonly onHeld: (bytes: number) => void = () => {},
  ) {
    this.node = new ByteRate(bytesPerSecond);
  }

  /** Upload bytes taken and not yet done or given back. */
  get inflight(): number {
    return this.held;
  }

  /**
   * Takes `bytes` from the node's bucket and `user`'s (when given) and from the bytes in flight,
   * and says when they may go; or, when the turn is more than UPLOAD_MAX_WAIT_MS away or the
   * bytes in flight are full, takes nothing and names the bound (a rate first: its refusal says
   * when to retry).
   */
  take(bytes: number, user: ByteRate | null, now: number): UploadTurn {
    const mine = user?.turn(bytes, now) ?? now;
    const node = this.node.turn(bytes, now);
    if (mine - now > UPLOAD_MAX_WAIT_MS) return { refused: "user_upload_rate", waitMs: Math.ceil(mine - now) };
    if (node - now > UPLOAD_MAX_WAIT_MS) return { refused: "upload_rate", waitMs: Math.ceil(node - now) };
    if (this.held > 0 && this.held + bytes > this.maxInflightBytes) return { refused: "upload_inflight", waitMs: 0 };
    user?.take(bytes, now);
    this.node.take(bytes, now);
    this.hold(bytes);
    return { at: Math.max(mine, node) };
  }

  /** Gives back a turn taken by `take` whose upload was dropped before it went (its socket closed). */
  give(bytes: number, user: ByteRate | null): void {
    user?.give(bytes);
    this.node.give(bytes);
    this.hold(-bytes);
  }

  /** An upload taken by `take` was handled (answered): its bytes are no longer held. */
  done(bytes: number): void {
    this.hold(-bytes);
  }

  private hold(bytes: number): void {
    this.held += bytes;
    this.onHeld(this.held);
  }
}
