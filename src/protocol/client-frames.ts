// Every frame a client may send, as valibot schemas: the validation, the TypeScript types and
// the protocol docs all come from here. Limits that come from configuration (body length, file
// size) are enforced by the service, which answers them with `too_large` rather than
// `bad_request`.
import * as v from "valibot";
import { ContentType, EntityId, FileName, GroupsCursor, noNul, RequestId, Seq, UserId, wellFormed } from "./names.ts";

export const MESSAGE_TYPES = ["text", "file", "image"] as const;
/** The most messages one history page may hold (WebSocket frame and HTTP query alike). */
export const HISTORY_MAX_LIMIT = 100;
const historyLimitMessage = `limit must be 1 to ${HISTORY_MAX_LIMIT}`;
/** A history page's size, as a number; the HTTP query parses its string into this. */
export const HistoryLimit = v.pipe(
  v.number("limit must be a number"),
  v.integer("limit must be a whole number"),
  v.minValue(1, historyLimitMessage),
  v.maxValue(HISTORY_MAX_LIMIT, historyLimitMessage),
);

/** `file`: the seed's bare base64 string, or a named, typed object with base64 `data`. */
export const FileInput = v.union(
  [
    v.string(),
    v.object({ name: FileName, content_type: ContentType, data: v.string("file.data must be a base64 string") }),
  ],
  "file must be a base64 string or {name, content_type, data}",
);
export type FileInput = v.InferOutput<typeof FileInput>;

const messageType = v.picklist(MESSAGE_TYPES, `type must be one of ${MESSAGE_TYPES.join(", ")}`);
const body = v.pipe(v.string("body must be a string"), noNul("body"), wellFormed);
const messageId = EntityId;
const user = v.optional(UserId);
/** What a typing_status may be (typing's fast path, src/chat/typing-fast.ts, checks the same). */
export const TYPING_STATUS = /^[a-z_]{1,32}$/;

export const ClientFrames = {
  create: v.object({ user, type: messageType, body: v.optional(body, ""), file: v.nullish(FileInput) }),
  update: v.object({ user, message_id: messageId, body, file: v.nullish(FileInput) }),
  delete: v.object({ user, message_id: messageId }),
  reply: v.object({ user, message_id: messageId, type: messageType, body: v.optional(body, ""), file: v.nullish(FileInput) }),
  seen: v.object({ user, message_id: messageId }),
  typing: v.object({
    user,
    typing_status: v.pipe(v.string("typing_status must be a string"), v.regex(TYPING_STATUS, `typing_status must match ${TYPING_STATUS.source}`)),
  }),
  presence: v.object({}),
  history: v.object({
    before: v.optional(EntityId),
    limit: v.optional(
      HistoryLimit,
      50,
    ),
  }),
  /** Moves the sender's read marker forward to `seq` (membership and read state, issue 12). */
  read: v.object({ user, seq: Seq }),
  /** Ends the sender's membership of the group. */
  leave: v.object({ user }),
  /** The sender's conversation list, most recent activity first; `before` is a previous answer's `next`. */
  groups: v.object({ user, before: v.optional(GroupsCursor), limit: v.optional(HistoryLimit, 50) }),
  /** `/ws/` only: follow the frame's `group`, resuming after `since` when given. */
  subscribe: v.object({ since: v.optional(Seq), presence: v.optional(v.boolean("presence must be true or false")) }),
  /** `/ws/` only: stop following the frame's `group`. */
  unsubscribe: v.object({}),
} as const;

export type Operation = keyof typeof ClientFrames;
export const OPERATIONS = Object.keys(ClientFrames) as Operation[];
export type ClientFrame<Op extends Operation> = v.InferOutput<(typeof ClientFrames)[Op]>;

/** What every frame shares, checked before the operation's own schema. */
export const Envelope = {
  request_id: v.optional(RequestId),
  operation: v.pipe(
    v.unknown(),
    v.check((x) => typeof x === "string" && x.length > 0, "operation must be a non-empty string"),
    v.string(),
  ),
} as const;

export const isOperation = (op: string): op is Operation => Object.hasOwn(ClientFrames, op);
