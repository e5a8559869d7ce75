// Builds the frames the service sends, each serialised once. Key order is fixed here so every
// node produces byte-identical events.
import type { AckEvent, ErrorCode, ErrorEvent, GroupEvent, HistoryEvent, MessageView, PresenceChangeEvent, PresenceEvent, ResumedEvent } from "../protocol/index.ts";

// Wire format of group events on the bus: exactly the frame clients receive. Stored events start
// with `{"operation":"<op>","seq":<n>,` (the builders put those keys first), so a node reads the
// seq off the first bytes without parsing the payload.
const SEQ_HEAD = /^\{"operation":"[a-z]+","seq":(\d+)[,}]/;

/** The seq of a serialised group event, or null for events without one (typing, seen). */
export function seqOf(payload: Uint8Array | string): number | null {
  const head = typeof payload === "string" ? payload.slice(0, 48) : Buffer.from(payload.buffer, payload.byteOffset, Math.min(48, payload.byteLength)).toString("latin1");
  const m = SEQ_HEAD.exec(head);
  return m ? Number(m[1]) : null;
}

export const serialize = (frame: GroupEvent | AckEvent | ErrorEvent | HistoryEvent | ResumedEvent | PresenceChangeEvent | PresenceEvent): string =>
  JSON.stringify(frame);

export type PresenceAnswer = Omit<PresenceEvent, "operation" | "request_id">;

export function presenceFrame(answer: PresenceAnswer, requestId?: string): string {
  const head: Pick<PresenceEvent, "operation" | "request_id"> = requestId === undefined ? { operation: "presence" } : { operation: "presence", request_id: requestId };
  return serialize({ ...head, group: answer.group, count: answer.count, users: answer.users });
}

export const resumedFrame = (seq: number): string => serialize({ operation: "resumed", seq });

export function ackFrame(requestId: string, fields: Omit<AckEvent, "operation" | "request_id">): string {
  return serialize({ operation: "ack", request_id: requestId, ...fields });
}

export function errorFrame(code: ErrorCode, message: string, requestId?: string): string {
  const frame: ErrorEvent = { operation: "error", code, message };
  if (requestId !== undefined) frame.request_id = requestId;
  return serialize(frame);
}

export function historyFrame(messages: MessageView[], hasMore: boolean, requestId?: string): string {
  const frame: HistoryEvent = requestId === undefined
    ? { operation: "history", messages, has_more: hasMore }
    : { operation: "history", request_id: requestId, messages, has_more: hasMore };
  return serialize(frame);
}
