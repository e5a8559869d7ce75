// The error codes of the contract: one union used by the service, the gateway, docs and tests.
import type { LimitName } from "./limits.ts";

export const ERROR_CODES = [
  "bad_request",
  "unknown_operation",
  "not_found",
  "forbidden",
  "too_large",
  "rate_limited",
  "unavailable",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** A failure the client is told about; anything else thrown is reported as `internal`. */
export class ChatError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The configured limit that caused it, if any (counted in chat_limit_hits_total). */
    readonly limit?: LimitName,
  ) {
    super(message);
    this.name = "ChatError";
  }
}
