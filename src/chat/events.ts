// Builds the frames the service sends, each serialised once. Key order is fixed here so every
// node produces byte-identical events.
import type { AckEvent, ErrorCode, ErrorEvent, GroupEvent, GroupsEvent, HistoryEvent, MessageView, PresenceChangeEvent, PresenceEvent, ResumedEvent } from "../protocol/index.ts";

// Wire format of group events on the bus: exactly the frame clients receive, `group` included, so
// a payload is relayed to every socket untouched. Stored events start with
// `{"operation":"<op>","seq":<n>,` (the builders put those keys first, then `group`), so a node
// reads the seq off the first bytes without parsing the payload.
// A presence tick's frames of a group may share one bus payload, a bundle (bundle.ts), which
// starts with `#`: each frame in it is still relayed untouched.
const SEQ_HEAD = /^\{"operation":"[a-z]+","seq":(\d+)[,}]/;
/** Where the operation's name starts in a serialised event. */
const OPERATION_AT = '{"operation":"'.length;

/** The seq of a serialised group event, or null for events without one (typing, seen). */
export function seqOf(payload: Uint8Array | string): number | null {
  // Most events without a seq are typing, the most frequent: told apart without a copy or a regex.
  if (typeof payload === "string" && !payload.startsWith(',"seq":', payload.indexOf('"', OPERATION_AT) + 1)) return null;
  const head = typeof payload === "string" ? payload.slice(0, 48) : Buffer.from(payload.buffer, payload.byteOffset, Math.min(48, payload.byteLength)).toString("latin1");
  const m = SEQ_HEAD.exec(head);
  return m ? Number(m[1]) : null;
}

export const serialize = (frame: GroupEvent | AckEvent | ErrorEvent | HistoryEvent | ResumedEvent | PresenceChangeEvent | PresenceEvent | GroupsEvent): string =>
  JSON.stringify(frame);

export type PresenceAnswer = Omit<PresenceEvent, "operation" | "request_id">;

export function presenceFrame(answer: PresenceAnswer, requestId?: string): string {
  const head: Pick<PresenceEvent, "operation" | "group" | "request_id"> =
    requestId === undefined ? { operation: "presence", group: answer.group } : { operation: "presence", group: answer.group, request_id: requestId };
  return serialize({ ...head, count: answer.count, users: answer.users });
}

export const resumedFrame = (group: string, seq: number): string => serialize({ operation: "resumed", group, seq });

export function ackFrame(group: string, requestId: string, fields: Omit<AckEvent, "operation" | "group" | "request_id">): string {
  return serialize({ operation: "ack", group, request_id: requestId, ...fields });
}

/** `group` when the refused frame named one (on a per-group socket: always its group). */
export function errorFrame(code: ErrorCode, message: string, requestId?: string, group?: string): string {
  const frame: ErrorEvent = group === undefined ? { operation: "error", code, message } : { operation: "error", group, code, message };
  if (requestId !== undefined) frame.request_id = requestId;
  return serialize(frame);
}

export function historyFrame(group: string, messages: MessageView[], hasMore: boolean, requestId?: string): string {
  const frame: HistoryEvent = requestId === undefined
    ? { operation: "history", group, messages, has_more: hasMore }
    : { operation: "history", group, request_id: requestId, messages, has_more: hasMore };
  return serialize(frame);
}

/** The answer to `groups`: about no one group, so it carries none. */
export function groupsFrame(page: Omit<GroupsEvent, "operation" | "request_id">, requestId?: string): string {
  const frame: GroupsEvent = requestId === undefined ? { operation: "groups", ...page } : { operation: "groups", request_id: requestId, ...page };
  return serialize(frame);
}
