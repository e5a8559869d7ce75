// The frame loop: a text frame passes the socket's limits (frame rates, frames and bytes awaiting
// an answer, the node-wide byte budget, for a large frame the upload byte rate and upload bytes
// in flight), goes to the dispatcher, and its answer goes back to the socket if it is still open.
// Frames turned away here get their error at once and hold nothing. An upload whose turn has not
// come yet waits in its socket's queue (a copy, counted as pending like a frame in flight, and
// as an upload in flight), and the socket's later frames wait behind it, so a sender's frames
// still reach the dispatcher in order.
import { performance } from "node:perf_hooks";
import type { ByteBudget } from "../chat/budget.ts";
import type { Dispatcher } from "../chat/dispatch.ts";
import { errorFrame } from "../chat/events.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { ErrorCode } from "../protocol/index.ts";
import type { SlowConsumers } from "./backpressure.ts";
import type { Connection } from "./connection.ts";
import { requestIdOf, type ConnectionLimits } from "./limits.ts";
import { UPLOAD_FRAME_BYTES, type ByteRate, type UploadBudget } from "./upload-budget.ts";

export interface FrameLimits {
  /** Frames of one socket awaiting an answer (MAX_PENDING_FRAMES). */
  maxPendingFrames: number;
  /** Bytes of one socket's frames awaiting an answer (MAX_PENDING_BYTES); a lone frame always passes. */
  maxPendingBytes: number;
}

/** A frame waiting for its upload turn (or behind one), copied out of uWS's buffer. */
interface Waiting {
  bytes: Buffer;
  /** When it may go (performance.now clock). */
  at: number;
  /** The upload turn it took, given back when it is dropped; null for a small frame queued behind one. */
  upload: ByteRate | null;
}

interface SocketQueue {
  frames: Waiting[];
  timer: NodeJS.Timeout | null;
}

export class FrameLoop {
  /** Frames handed to the dispatcher (or waiting for their upload turn) and not yet answered, node-wide. */
  private inflight = 0;
  /** Sockets with frames waiting for an upload turn. */
  private readonly queues = new Map<Connection, SocketQueue>();
  private idle: (() => void) | null = null;
  private closing = false;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly limits: ConnectionLimits,
    /** The node-wide byte budget (shared with held events). */
    private readonly budget: ByteBudget,
    /** The node-wide upload byte rate (each user's is in their quota). */
    private readonly uploads: UploadBudget,
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
    const now = performance.now();
    let at = now;
    let upload: ByteRate | null = null;
    if (bytes >= UPLOAD_FRAME_BYTES) {
      upload = conn.quota.userQuota.uploads;
      const turn = this.uploads.take(bytes, upload, now);
      if ("refused" in turn) {
        this.budget.give(bytes);
        this.limits.hit(turn.refused);
        return this.refuse(conn, "rate_limited", refusal(turn.refused, turn.waitMs, this.uploads, upload), requestIdOf(data));
      }
      at = turn.at;
    }
    conn.pending++;
    conn.pendingBytes += bytes;
    this.inflight++;
    const queue = this.queues.get(conn);
    if (!queue && at <= now) return this.run(conn, utf8.decode(data), bytes, upload !== null);
    // Its turn has not come, or an earlier frame of the socket waits: copied now (uWS reuses the buffer).
    const waiting: Waiting = { bytes: Buffer.from(new Uint8Array(data)), at: Math.max(at, queue?.frames.at(-1)!.at ?? at), upload };
    if (queue) queue.frames.push(waiting);
    else {
      this.queues.set(conn, { frames: [waiting], timer: null });
      this.wake(conn);
    }
  }

  /** A socket closed: frames still waiting for their turn are dropped, their turns and bytes given back. */
  closed(conn: Connection): void {
    const queue = this.queues.get(conn);
    if (!queue) return;
    this.queues.delete(conn);
    if (queue.timer) clearTimeout(queue.timer);
    for (const w of queue.frames) {
      if (w.upload !== null) this.uploads.give(w.bytes.byteLength, w.upload);
      this.settle(conn, w.bytes.byteLength);
    }
  }

  /** Hands a socket's waiting frames whose turn has come to the dispatcher, in order; sleeps until the next one's. */
  private wake(conn: Connection): void {
    const queue = this.queues.get(conn);
    if (!queue) return;
    queue.timer = null;
    if (!conn.open) return this.closed(conn);
    const now = performance.now();
    while (queue.frames.length > 0 && queue.frames[0]!.at <= now) {
      const w = queue.frames.shift()!;
      if (this.closing || conn.draining) {
        // Its turn came during a drain: refused as a new frame would be (retry elsewhere).
        this.refuse(conn, "unavailable", "server shutting down; reconnect", requestIdOf(w.bytes));
        if (w.upload !== null) this.uploads.give(w.bytes.byteLength, w.upload);
        this.settle(conn, w.bytes.byteLength);
      } else this.run(conn, w.bytes.toString("utf8"), w.bytes.byteLength, w.upload !== null);
    }
    if (queue.frames.length === 0) this.queues.delete(conn);
    else queue.timer = setTimeout(() => this.wake(conn), Math.max(1, Math.ceil(queue.frames[0]!.at - now)));
  }

  private run(conn: Connection, text: string, bytes: number, upload: boolean): void {
    if (upload) this.metrics.uploadBytes.inc(bytes);
    // Handed over at once, not after the previous frame's answer: the dispatcher reaches the
    // store synchronously, and the store commits a group's writes in the order they arrive, so a
    // sender's messages keep their order while several are in flight.
    // Typing on the in-process bus is answered inside the call (see Dispatcher.dispatch).
    const answer = this.dispatcher.dispatch(conn.session, text, conn.mux ?? undefined);
    if (answer instanceof Promise) void answer.then((reply) => this.answered(conn, reply, bytes, upload));
    else this.answered(conn, answer, bytes, upload);
  }

  private answered(conn: Connection, reply: string | null, bytes: number, upload: boolean): void {
    if (reply !== null && conn.open) {
      conn.cork(() => conn.send(reply));
      this.slow.check(conn);
    }
    if (upload) this.uploads.done(bytes);
    this.settle(conn, bytes);
  }

  /** A frame of the socket is answered (or dropped): its share of the budgets is given back. */
  private settle(conn: Connection, bytes: number): void {
    conn.pending--;
    conn.pendingBytes -= bytes;
    this.budget.give(bytes);
    // Its turn in a paced drain or a rebalance came while this frame was in flight: closed once answered.
    conn.settled();
    if (--this.inflight === 0) this.idle?.();
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

/**
 * A text frame's UTF-8 (uWS has checked it is valid), a leading BOM kept as Buffer's toString
 * keeps it (so such a frame is still not JSON); no Buffer object per frame.
 */
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

const mib = (bytes: number) => Math.round((bytes / (1024 * 1024)) * 10) / 10;

/** The error message of an upload turned away by the upload budget. */
function refusal(bound: "upload_rate" | "user_upload_rate" | "upload_inflight", waitMs: number, uploads: UploadBudget, user: ByteRate): string {
  if (bound === "upload_inflight") return `this node is handling ${mib(uploads.maxInflightBytes)} MiB of uploads at once; retry shortly`;
  const whose = bound === "upload_rate" ? "this node's" : "your";
  return `uploads past ${whose} budget of ${mib(bound === "upload_rate" ? uploads.node.bytesPerSecond : user.bytesPerSecond)} MiB/s; retry in ${Math.ceil(waitMs / 1000)} s`;
}
