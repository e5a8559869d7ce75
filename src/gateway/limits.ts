// The limits the gateway enforces around the dispatcher, as small checks: the browser origin,
// groups per node and sockets per user (before the upgrade joins the group), frames per second
// per socket and per user (token buckets, before a frame is parsed), and the closes that uWS
// makes by itself for a limit (frame size, idle time). Every hit is counted in
// chat_limit_hits_total{limit}; the gateway answers with the contract's codes.
import { performance } from "node:perf_hooks";
import * as v from "valibot";
import type { Metrics } from "../metrics/metrics.ts";
import { RequestId, type ErrorCode, type LimitName } from "../protocol/index.ts";
import { TokenBucket } from "./rate-limit.ts";
import { ByteRate, UPLOAD_FRAME_BYTES } from "./upload-budget.ts";

export interface LimitOptions {
  framesPerSecond: number;
  framesBurst: number;
  /** Per user on this node, over all their sockets; the burst is USER_BURST_SECONDS of it. */
  userFramesPerSecond: number;
  /** Bytes of uploads per user on this node, over all their sockets (see upload-budget.ts). */
  userUploadBytesPerSecond: number;
  maxSocketsPerUser: number;
  maxGroupsPerNode: number;
  /** Browser origins allowed to open a WebSocket; null allows any. */
  allowedOrigins: readonly string[] | null;
}

interface UserQuota {
  sockets: number;
  bucket: TokenBucket;
  uploads: ByteRate;
}

/**
 * One socket's share: its own bucket and its user's. A connection without a user (open dev mode
 * without ?user=, where each frame names its own) counts under its remote address instead, so an
 * anonymous client is held to the same per-user limits.
 */
export interface SocketQuota {
  /** `user <id>`, or `address <ip>` for a connection without a user. */
  readonly key: string;
  readonly bucket: TokenBucket;
  readonly userQuota: UserQuota;
}

export type Admission =
  | { ok: true; quota: SocketQuota }
  | { ok: false; status: 429 | 503; message: string };

/** What the node's groups look like to admission (the service's memberships). */
export interface GroupCount {
  readonly size: number;
  has(group: string): boolean;
}

/** Closes uWS makes by itself, by the reason it gives the close handler. */
const UWS_CLOSES: Record<string, LimitName> = {
  "Received too big message": "frame_size",
  "WebSocket timed out from inactivity": "idle_timeout",
};

/** A user's bucket holds this many seconds of their rate: a burst, and the time to refill it. */
const USER_BURST_SECONDS = 2;
const USER_BUCKET_REFILL_MS = USER_BURST_SECONDS * 1000;

export class ConnectionLimits {
  private readonly users = new Map<string, UserQuota>();

  constructor(
    private readonly opts: LimitOptions,
    private readonly metrics: Metrics,
  ) {}

  /** With ALLOWED_ORIGINS set, a browser (which always sends Origin) must come from a listed one. */
  originAllowed(origin: string): boolean {
    return this.opts.allowedOrigins === null || origin === "" || this.opts.allowedOrigins.includes(origin);
  }

  /**
   * Right before the upgrade joins its group: refuses a new group past MAX_GROUPS_PER_NODE (503)
   * and a user (or, without one, a remote address) past MAX_SOCKETS_PER_USER (429); otherwise
   * takes the socket's slot, which `release` gives back.
   */
  admit(user: string | null, address: string, group: string, groups: GroupCount): Admission {
    if (!groups.has(group) && groups.size >= this.opts.maxGroupsPerNode) {
      return this.refuse(503, "unavailable", "groups_per_node", `this node already serves ${this.opts.maxGroupsPerNode} groups; retry later`);
    }
    const key = user !== null ? `user ${user}` : `address ${address}`;
    let userQuota = this.users.get(key);
    if (userQuota && userQuota.sockets >= this.opts.maxSocketsPerUser) {
      const who = user !== null ? "user" : "address (connections without ?user=)";
      return this.refuse(429, "rate_limited", "sockets_per_user", `at most ${this.opts.maxSocketsPerUser} connections per ${who}`);
    }
    if (!userQuota) {
      const rate = this.opts.userFramesPerSecond;
      userQuota = { sockets: 0, bucket: new TokenBucket(rate, rate * USER_BURST_SECONDS), uploads: new ByteRate(this.opts.userUploadBytesPerSecond) };
      this.users.set(key, userQuota);
    }
    userQuota.sockets++;
    return { ok: true, quota: { key, userQuota, bucket: new TokenBucket(this.opts.framesPerSecond, this.opts.framesBurst) } };
  }

  /**
   * The socket is gone (or its upgrade failed after admission): gives its slot back. A user's
   * buckets outlive their last socket until they would have refilled anyway (the frame bucket's
   * burst ÷ rate = 2 s; the upload bucket is never more than UPLOAD_MAX_WAIT_MS ahead):
   * dropping it at once would hand a fresh burst to anyone who reconnects to spend it again.
   */
  release(q: SocketQuota): void {
    const { key, userQuota } = q;
    if (--userQuota.sockets > 0) return;
    setTimeout(() => {
      if (userQuota.sockets <= 0 && this.users.get(key) === userQuota) this.users.delete(key);
    }, USER_BUCKET_REFILL_MS).unref();
  }

  /** A frame arrived: the rate limit it breaks, or null (then a token of each bucket is taken). */
  frame(q: SocketQuota): LimitName | null {
    const now = performance.now();
    if (!q.bucket.take(now)) return this.hit("socket_rate");
    if (!q.userQuota.bucket.take(now)) return this.hit("user_rate");
    return null;
  }

  /** Counts a close uWS made for a limit (too big a frame, no traffic within IDLE_TIMEOUT_S). */
  closed(code: number, reason: ArrayBuffer): void {
    if (code !== 1006 || reason.byteLength === 0) return;
    const limit = UWS_CLOSES[Buffer.from(reason).toString("latin1")];
    if (limit) this.hit(limit);
  }

  hit(limit: LimitName): LimitName {
    this.metrics.limitHits.inc({ limit });
    return limit;
  }

  private refuse(status: 429 | 503, code: ErrorCode, limit: LimitName, message: string): Admission {
    this.hit(limit);
    this.metrics.errors.inc({ code });
    return { ok: false, status, message };
  }
}

/**
 * The request_id of a text frame turned away before the dispatcher, so its error can echo it.
 * An upload-sized frame is not parsed (that would cost what refusing it saves): its
 * `"request_id": "…"` member is found by a native byte search (inside a string value the
 * quotes would be escaped). A frame crafted to hold a second such member (in a nested object, or
 * a key ending in `request_id`) may see the first echoed: it only labels that frame's refusal.
 */
export function requestIdOf(data: ArrayBuffer | Buffer): string | undefined {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
  if (bytes.byteLength >= UPLOAD_FRAME_BYTES) return scanRequestId(bytes);
  try {
    const raw: unknown = JSON.parse(bytes.toString("utf8"));
    const rid = typeof raw === "object" && raw !== null ? (raw as { request_id?: unknown }).request_id : undefined;
    return v.is(RequestId, rid) ? rid : undefined;
  } catch {
    return undefined;
  }
}

const REQUEST_ID_KEY = Buffer.from('"request_id"');
const REQUEST_ID_MEMBER = /^"request_id"\s*:\s*("(?:[^"\\]|\\.){0,400}")/;

function scanRequestId(bytes: Buffer): string | undefined {
  for (let at = bytes.indexOf(REQUEST_ID_KEY); at !== -1; at = bytes.indexOf(REQUEST_ID_KEY, at + 1)) {
    const m = REQUEST_ID_MEMBER.exec(bytes.subarray(at, at + 512).toString("utf8"));
    if (!m) continue;
    try {
      const rid: unknown = JSON.parse(m[1]!);
      return v.is(RequestId, rid) ? rid : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
