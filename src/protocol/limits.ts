// The limits a client can run into, by name: the `limit` label of chat_limit_hits_total and the
// tag a ChatError carries when a limit caused it. Each is set in src/config/env.ts.
import { HISTORY_MAX_LIMIT } from "./client-frames.ts";

export const LIMITS = [
  "frame_size", //        MAX_FRAME_BYTES: the socket is closed (uWS drops it)
  "body_length", //       MAX_BODY_CHARS: too_large
  "file_size", //         MAX_FILE_BYTES: too_large
  "socket_rate", //       MAX_FRAMES_PER_SECOND / MAX_FRAMES_BURST: rate_limited
  "user_rate", //         MAX_USER_FRAMES_PER_SECOND: rate_limited
  "pending_frames", //    MAX_PENDING_FRAMES: rate_limited
  "sockets_per_user", //  MAX_SOCKETS_PER_USER: HTTP 429 at the upgrade
  "groups_per_node", //   MAX_GROUPS_PER_NODE: HTTP 503 at the upgrade
  "subscriptions_per_socket", // MAX_SUBSCRIPTIONS_PER_SOCKET: too_large on /ws/ subscribe
  "slow_consumer", //     MAX_BACKPRESSURE_BYTES: close 4008
  "idle_timeout", //      IDLE_TIMEOUT_S: closed after no traffic (pings unanswered)
  "held_bytes", //        MAX_HELD_BYTES: close 4008 (events held for one resuming subscription)
  "node_buffer", //       MAX_NODE_BUFFER_BYTES: rate_limited, or close 4008 for a resume
  "pending_bytes", //     MAX_PENDING_BYTES: rate_limited
  "replay_slots", //      MAX_CONCURRENT_REPLAYS: the replay waits for a slot
  "file_reads", //        MAX_FILE_READS: GET /files answered 503
  "http_buffer", //       HTTP_BUFFER_BYTES: an HTTP answer (history page) answered 503
  "upload_rate", //       MAX_UPLOAD_BYTES_PER_SECOND: an upload (frame or server-API body) rate_limited
  "user_upload_rate", //  MAX_USER_UPLOAD_BYTES_PER_SECOND: an upload frame rate_limited
  "upload_inflight", //   MAX_UPLOAD_INFLIGHT_BYTES: an upload (frame or server-API body) rate_limited
] as const;

export type LimitName = (typeof LIMITS)[number];

/** WebSocket close codes the server uses besides the standard ones (1001 on shutdown). */
export const CLOSE_SLOW_CONSUMER = 4008;
/** The token the socket was opened with has expired (at `exp` plus JWT_CLOCK_TOLERANCE_S): reconnect with a fresh one. */
export const CLOSE_TOKEN_EXPIRED = 4001;
/** A backend closed this user's sockets through the server API (POST /api/server/users/<user>/disconnect). */
export const CLOSE_DISCONNECTED = 4010;
/** Rebalancing: this node holds more than its fair share of the fleet's sockets; reconnect (with jitter) and resume with `since`. */
export const CLOSE_REBALANCE = 4012;

/** Room for a message's fields other than its body (ids, user, file name and type, times). */
const MESSAGE_FIELDS_BYTES = 8 * 1024;

/**
 * An upper bound on the largest frame the server sends: a full history page, every body at its
 * longest and every character at its longest once JSON-escaped (`\u001f` is 6 bytes).
 */
export function maxHistoryPageBytes(maxBodyChars: number): number {
  return HISTORY_MAX_LIMIT * (maxBodyChars * 6 + MESSAGE_FIELDS_BYTES);
}
