// The server API's requests and answers as valibot schemas: the validation, the TypeScript types
// and the OpenAPI document (openapi.ts) all come from here. Message fields reuse the WebSocket
// protocol's own schemas, so a publish is checked exactly like a create frame.
import * as v from "valibot";
import { ClientFrames, EntityId, ERROR_CODES, GroupName, MessageView, PresentUser, RequestId, UserId } from "../../protocol/index.ts";
import { HistoryQuery } from "../routes.ts";

const create = ClientFrames.create.entries;

export const GroupParam = v.pipe(GroupName, v.description("group name: 1 to 99 characters of A-Z a-z 0-9 - _ ."));
export const MessageIdParam = v.pipe(EntityId, v.description("message id"));
export const UserParam = v.pipe(UserId, v.description("user id (percent-encoded in the path)"));

/** POST /api/server/groups/<group>/messages: a create acting as `user` (any user id, e.g. a bot or `system`). */
export const PublishRequest = v.object({
  user: UserId,
  type: create.type,
  body: create.body,
  file: create.file,
  request_id: v.pipe(v.optional(RequestId), v.description("idempotency key: a retry with the same one (same user and group, within RETRY_WINDOW_S) stores nothing new and answers the original")),
});
export type PublishRequest = v.InferOutput<typeof PublishRequest>;

export const StoredAnswer = v.object({
  message_id: v.string(),
  seq: v.pipe(v.number(), v.integer(), v.minValue(1)),
});

export const HistoryAnswer = v.object({ messages: v.array(MessageView), has_more: v.boolean() });

/** DELETE: who deletes, recorded as the delete event's `user` (default `system`). */
export const DeleteQuery = v.object({ user: v.optional(UserId, "system") });

export { HistoryQuery };

export const DisconnectAnswer = v.object({
  user: v.string(),
  /** Published to every node; each closes that user's sockets with 4010. */
  published: v.literal(true),
});

/** The error codes an HTTP answer may carry: the WebSocket codes plus `unauthorized` (401). */
export const HTTP_ERROR_CODES = [...ERROR_CODES, "unauthorized"] as const;
export type HttpErrorCode = (typeof HTTP_ERROR_CODES)[number];
export const ErrorAnswer = v.object({ code: v.picklist(HTTP_ERROR_CODES), message: v.string() });

/** The HTTP status of each error code. */
export const ERROR_STATUS: Record<HttpErrorCode, number> = {
  bad_request: 400,
  unknown_operation: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  too_large: 413,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

/** GET /api/server/webhooks/dead-letters */
export const DeadLettersQuery = v.object({
  limit: v.optional(v.pipe(v.string(), v.regex(/^\d{1,4}$/, "limit must be 1 to 1000"), v.toNumber(), v.minValue(1, "limit must be 1 to 1000"), v.maxValue(1000, "limit must be 1 to 1000")), "100"),
});
export const DeadLettersAnswer = v.object({
  dead_letters: v.array(v.object({ group: v.string(), seq: v.number(), attempts: v.number(), last_error: v.nullable(v.string()), created: v.string() })),
});
/** POST /api/server/webhooks/dead-letters/requeue: all dead letters, one group's, or one event's. */
export const RequeueRequest = v.object({ group: v.optional(GroupName), seq: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))) });
export const RequeueAnswer = v.object({ requeued: v.number() });

/** GET /api/server/groups/<group>/presence: the presence frame's answer without its envelope. */
export const PresenceAnswer = v.object({ group: v.string(), count: v.pipe(v.number(), v.integer(), v.minValue(0)), users: v.array(PresentUser) });
