// Typing's fast path: the one frame a client sends many times a second, never stored, fanned out
// to every socket of the group. Its check and its event are written out by hand here, because the
// generic path (valibot's schemas, the event object, JSON.stringify) costs more than the fan-out.
//
// The schemas stay the source of truth: `isCleanTyping` accepts only frames that
// `Envelope.request_id` and `ClientFrames.typing` accept, with the same values; anything else (a
// field of another type, a malformed value) goes the generic way and gets the schemas' own error.
// test/chat/typing-fast.test.ts feeds both the same good and bad frames.
import { PRINTABLE } from "../protocol/names.ts";
import { TYPING_STATUS } from "../protocol/client-frames.ts";

/** A typing frame as the schemas would hand it on (unknown extra fields are ignored by both). */
export interface CleanTyping {
  operation: "typing";
  request_id?: string;
  user?: string;
  typing_status: string;
}

/** Whether a parsed frame is a typing frame the schemas accept as it is. */
export function isCleanTyping(frame: unknown): frame is CleanTyping {
  if (typeof frame !== "object" || frame === null) return false;
  const f = frame as Record<string, unknown>;
  if (f.operation !== "typing") return false;
  const rid = f.request_id;
  if (rid !== undefined && !(typeof rid === "string" && rid.length >= 1 && rid.length <= 64 && !rid.includes("\u0000"))) return false;
  const user = f.user;
  if (user !== undefined && !(typeof user === "string" && user.length >= 1 && user.length <= 128 && PRINTABLE.test(user))) return false;
  const status = f.typing_status;
  return typeof status === "string" && TYPING_STATUS.test(status);
}

/**
 * The typing event, byte for byte what `serialize({ operation, group, user, typing_status })`
 * gives: `typing_status` matches ^[a-z_]{1,32}$, so it needs no escaping.
 */
export const typingEvent = (group: string, user: string, typingStatus: string): string =>
  `{"operation":"typing","group":${JSON.stringify(group)},"user":${JSON.stringify(user)},"typing_status":"${typingStatus}"}`;

/** What `ChatService.typingNow` returns when the bus delivered the event inside the call. */
export const SENT = Symbol("typing sent");
