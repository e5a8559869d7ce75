// The frame loop: a text frame passes the socket's limits (frame rates, frames and bytes awaiting
// an answer, the node-wide byte budget), goes to the dispatcher, and its answer goes back to the
// socket if it is still open. Frames turned away here get their error at once and hold nothing.
import type { ByteBudget } from "../chat/budget.ts";
import type { Dispatcher } from "../chat/dispatch.ts";
import { errorFrame } from "../chat/events.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { ErrorCode } from "../protocol/index.ts";
import type { SlowConsumers } from "./backpressure.ts";
import type { Connection } from "./connection.ts";
import { requestIdOf, type ConnectionLimits } from "./limits.ts";

export interface FrameLimits {
  /** Frames of one socket awaiting an answer (MAX_PENDING_FRAMES). */
  maxPendingFrames: number;
  /** Bytes of one socket's frames awaiting an answer (MAX_PENDING_BYTES); a lone frame always passes. */
  maxPendingBytes: number;
}

export class FrameLoop {
  /** Frames handed to the dispatcher and not yet answered, node-wide. */
  private inflight = 0;
  private idle: (() => void) | null = null;
  private closing = false;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly limits: ConnectionLimits,
    /** The node-wide byte budget (shared with held events). */
    private readonly budget: ByteBudget,
    private readonly slow: SlowConsumers<Connection>,
    private readonly metrics: Metrics,
    private readonly opts: FrameLimits,
    /** A frame came from a socket whose token has expired (its timer has not fired yet). */
    private readonly expired: (conn: Connection) => void,
  ) {}

  message(conn: Connection, data: ArrayBuffer, isBinary: boolean): void {
    if (!conn.open) return; // closing: what it sends now is neither run nor answered
    if (conn.expired) return this.expired(conn); // and nothing acts on an expired token
    const limited = this.limits.frame(conn.quota);
    if (limited) {
      const what = limited === "socket_rate" ? "this connection" : "this user";
      return this.refuse(conn, "rate_limited", `too many frames from ${what}; slow down`, isBinary ? undefined : requestIdOf(data));
    }
    if (isBinary) return this.refuse(conn, "bad_request", "binary frames are not accepted; send JSON text");
    if (this.closing || conn.draining) return this.refuse(conn, "unavailable", "server shutting down; reconnect", requestIdOf(data));
    if (conn.pending >= this.opts.maxPendingFrames) {
      this.limits.hit("pending_frames");
      return this.refuse(conn, "rate_limited", `more than ${this.opts.maxPendingFrames} frames awaiting an answer`, requestIdOf(data));
    }
    const bytes = data.byteLength;
    if (conn.pending > 0 && conn.pendingBytes + bytes > this.opts.maxPendingBytes) {
      this.limits.hit("pending_bytes");
      return this.refuse(conn, "rate_limited", `more than ${this.opts.maxPendingBytes} bytes of frames awaiting an answer`, requestIdOf(data));
    }
    if (!this.budget.take(bytes)) {
      this.limits.hit("node_buffer");
      return this.refuse(conn, "rate_limited", "the node is holding too much data; retry shortly", requestIdOf(data));
    }
    // Copy now: uWS reuses the buffer once this callback returns.
    const text = Buffer.from(data).toString("utf8");
    conn.pending++;
    conn.pendingBytes += bytes;
    this.inflight++;
    // Handed over at once, not after the previous frame's answer: the dispatcher reaches the
    // store synchronously, and the store commits a group's writes in the order they arrive, so a
    // sender's messages keep their order while several are in flight.
    void this.dispatcher.dispatch({ group: conn.group, user: conn.user }, text, conn.mux ?? undefined).then((reply) => {
      if (reply !== null && conn.open) {
        conn.cork(() => conn.send(reply));
        this.slow.check(conn);
      }
      conn.pending--;
      conn.pendingBytes -= bytes;
      this.budget.give(bytes);
      // Its turn in a paced drain came while this frame was in flight: closed once answered.
      if (conn.draining && conn.pending === 0) conn.end(conn.drainCode, conn.drainCode === 1001 ? "server shutting down" : "reconnect elsewhere");
      if (--this.inflight === 0) this.idle?.();
    });
  }

  /** Shutdown: new frames are answered `unavailable`; resolves once the frames in flight are answered, or after `ms`. */
  async stop(ms: number): Promise<void> {
    this.closing = true;
    if (this.inflight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Answers a frame turned away before it reaches the dispatcher. */
  private refuse(conn: Connection, code: ErrorCode, message: string, requestId?: string): void {
    this.metrics.errors.inc({ code });
    // A per-group socket's every frame names its group; a /ws/ socket's refusal here names none.
    conn.send(errorFrame(code, message, requestId, conn.group === "" ? undefined : conn.group));
    this.slow.check(conn);
  }
}
