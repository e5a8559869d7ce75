// How an operation of the SDK fails: the server's error frame (its code is one of the
// protocol's), or one of the SDK's own reasons.
import type { ErrorCode } from "../protocol/index.ts";

/**
 * - any protocol `ErrorCode`: the server answered the frame with an `error` (or, for
 *   `bad_request`, the SDK refused it before sending, from the same schema the server uses);
 * - `timeout`: no answer within `timeoutMs` of sending, or not sent within `queueTimeoutMs`;
 * - `closed`: the client was closed before the answer came.
 */
export type ClientErrorCode = ErrorCode | "timeout" | "closed";

export class ChatRequestError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** The request_id of the frame, when it was given one. */
    readonly requestId?: string,
  ) {
    super(message);
    this.name = "ChatRequestError";
  }
}
