// Every frame the server sends. The service builds these objects and serialises each once; the
// schemas give the types, and tests validate what they receive against them.
import * as v from "valibot";
import { ERROR_CODES } from "./errors.ts";
import { MESSAGE_TYPES } from "./client-frames.ts";

export const AttachmentView = v.object({
  id: v.string(),
  name: v.string(),
  content_type: v.string(),
  size: v.number(),
});

export const MessageView = v.strictObject({
  id: v.string(),
  user: v.string(),
  body: v.nullable(v.string()),
  type: v.picklist(MESSAGE_TYPES),
  file: v.nullable(v.string()),
  attachment: v.nullable(AttachmentView),
  reply_to: v.nullable(v.string()),
  created: v.string(),
  updated: v.nullable(v.string()),
  deleted: v.boolean(),
  /** The seq of the event that created the message: read markers at or past it have read it. */
  seq: v.pipe(v.number(), v.integer(), v.minValue(1)),
});
export type MessageView = v.InferOutput<typeof MessageView>;

const seq = v.pipe(v.number(), v.integer(), v.minValue(1));
const requestId = v.optional(v.string());
/**
 * The group a frame is about. Every group event carries it, on both endpoints; so do the ack,
 * error and answer of a frame that named a group (on `/ws/chat/<group>/` every frame names the
 * socket's group). It follows `operation` (and `seq` in stored events, whose first bytes carry
 * the seq: see chat/events.ts).
 */
const group = v.string();

export const MessageEvent = v.strictObject({
  operation: v.picklist(["create", "update", "reply"]),
  seq,
  group,
  message: MessageView,
});
/**
 * `user` did the delete (the author, or the `by` of a backend's moderation); `message_seq` and
 * `author` are the deleted message's own, so a client can tell whether it was unread for its user
 * without having loaded it.
 */
export const DeleteEvent = v.strictObject({ operation: v.literal("delete"), seq, group, message_id: v.string(), user: v.string(), message_seq: seq, author: v.string() });
export const SeenEvent = v.strictObject({ operation: v.literal("seen"), group, message_id: v.string(), user: v.string(), seen_at: v.string() });
export const TypingEvent = v.strictObject({ operation: v.literal("typing"), group, user: v.string(), typing_status: v.string() });
export const AckEvent = v.strictObject({
  operation: v.literal("ack"),
  group,
  request_id: v.string(),
  message_id: v.optional(v.string()),
  /** A stored event's seq; for `subscribe`, the group's last seq (0 for a group without events). */
  seq: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  seen_at: v.optional(v.string()),
  /** The sender's read marker after a `read`. */
  read_seq: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  /** After a `read`: the sender's unread count as of the group's `last_seq` (one snapshot). */
  unread: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  last_seq: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});
export const ErrorEvent = v.strictObject({ operation: v.literal("error"), group: v.optional(group), code: v.picklist(ERROR_CODES), message: v.string(), request_id: requestId });
export const ResumedEvent = v.strictObject({ operation: v.literal("resumed"), group, seq: v.pipe(v.number(), v.integer(), v.minValue(0)) });
export const PresenceChangeEvent = v.strictObject({ operation: v.picklist(["join", "leave"]), group, user: v.string() });
export const PresentUser = v.strictObject({ user: v.string(), since: v.string() });
/** The answer to `presence` (frame and HTTP): `count` is exact, `users` the longest present, at most PRESENCE_MAX_USERS. */
export const PresenceEvent = v.strictObject({
  operation: v.literal("presence"),
  group,
  request_id: requestId,
  count: v.pipe(v.number(), v.integer(), v.minValue(0)),
  users: v.array(PresentUser),
});
export const PRESENCE_MAX_USERS = 100;
export const HistoryEvent = v.strictObject({ operation: v.literal("history"), group, request_id: requestId, messages: v.array(MessageView), has_more: v.boolean() });

const readSeq = v.pipe(v.number(), v.integer(), v.minValue(0));
/**
 * A member's read marker moved forward. `unread` is that member's unread count as of the group's
 * `last_seq` (one snapshot), so every device of the reader agrees with the conversation list at
 * once; events after `last_seq` add to it.
 */
export const ReadEvent = v.strictObject({
  operation: v.literal("read"),
  group,
  user: v.string(),
  read_seq: readSeq,
  read_at: v.string(),
  unread: v.pipe(v.number(), v.integer(), v.minValue(0)),
  last_seq: v.pipe(v.number(), v.integer(), v.minValue(0)),
});
/** One entry of a conversation list. */
export const ConversationView = v.strictObject({
  group,
  last_seq: v.pipe(v.number(), v.integer(), v.minValue(0)),
  read_seq: readSeq,
  unread: v.pipe(v.number(), v.integer(), v.minValue(0)),
  last_message: v.nullable(MessageView),
  last_activity: v.string(),
});
export type ConversationView = v.InferOutput<typeof ConversationView>;
/** The answer to `groups` (and the body of GET /api/me/groups, without `operation`/`request_id`). */
export const GroupsEvent = v.strictObject({
  operation: v.literal("groups"),
  request_id: requestId,
  groups: v.array(ConversationView),
  has_more: v.boolean(),
  /** The `before` of the next page, when there is one. */
  next: v.optional(v.string()),
});
/** One member of a group with their marker (GET /api/groups/<group>/members). */
export const MemberView = v.strictObject({ user: v.string(), read_seq: readSeq, joined_at: v.string() });
export type MemberView = v.InferOutput<typeof MemberView>;
export const MembersPage = v.strictObject({ members: v.array(MemberView), has_more: v.boolean() });

/** Events broadcast to a whole group. */
export const GroupEvent = v.variant("operation", [MessageEvent, DeleteEvent, SeenEvent, TypingEvent, ReadEvent]);
/** Anything a socket may receive. */
export const ServerEvent = v.variant("operation", [MessageEvent, DeleteEvent, SeenEvent, TypingEvent, ReadEvent, AckEvent, ErrorEvent, HistoryEvent, ResumedEvent, GroupsEvent, PresenceChangeEvent, PresenceEvent]);

export type MessageEvent = v.InferOutput<typeof MessageEvent>;
export type DeleteEvent = v.InferOutput<typeof DeleteEvent>;
export type SeenEvent = v.InferOutput<typeof SeenEvent>;
export type TypingEvent = v.InferOutput<typeof TypingEvent>;
export type AckEvent = v.InferOutput<typeof AckEvent>;
export type ErrorEvent = v.InferOutput<typeof ErrorEvent>;
export type HistoryEvent = v.InferOutput<typeof HistoryEvent>;
export type ResumedEvent = v.InferOutput<typeof ResumedEvent>;
export type ReadEvent = v.InferOutput<typeof ReadEvent>;
export type GroupsEvent = v.InferOutput<typeof GroupsEvent>;
export type GroupEvent = v.InferOutput<typeof GroupEvent>;
export type PresenceChangeEvent = v.InferOutput<typeof PresenceChangeEvent>;
export type PresenceEvent = v.InferOutput<typeof PresenceEvent>;
export type ServerEvent = v.InferOutput<typeof ServerEvent>;
