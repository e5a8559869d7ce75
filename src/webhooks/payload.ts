// What a webhook carries and how it is signed: one JSON body per stored event,
// `{group, seq, operation, message | message_id, user}`, signed with HMAC-SHA256 over the exact
// body bytes (`X-Chatroom-Signature: sha256=<hex>`), and identified for de-duplication by
// `X-Chatroom-Delivery: <group>:<seq>` (the same on every retry).
import { createHmac } from "node:crypto";
import { toMessageView } from "../chat/message-view.ts";
import type { WebhookEvent } from "../protocol/webhook.ts";
import type { OutboxEvent } from "../store/outbox.ts";
import type { LoggedEvent } from "../store/store.ts";

export { DELIVERY_HEADER, SIGNATURE_HEADER, WebhookEvent } from "../protocol/webhook.ts";

/** The webhook body of a stored event: the message as the event left it. */
export function webhookEvent(group: string, seq: number, e: OutboxEvent): WebhookEvent {
  if (e.operation === "delete") return { group, seq, operation: "delete", message_id: e.messageId, user: e.user };
  return { group, seq, operation: e.operation, message: toMessageView(e.message), user: e.user };
}

/** An event read back from the event log (outbox rows written before events were kept): the message in its current state. */
export function fromLog(e: LoggedEvent): OutboxEvent {
  if (e.operation === "delete") return { operation: "delete", user: e.userId, messageId: e.message.id };
  return { operation: e.operation, user: e.userId, message: e.message };
}

export const deliveryId = (group: string, seq: number) => `${group}:${seq}`;

export function sign(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}
