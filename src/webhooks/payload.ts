// What a webhook carries and how it is signed: one JSON body per stored event,
// `{group, seq, operation, message | message_id, user}`, signed with HMAC-SHA256 over the exact
// body bytes (`X-Chatroom-Signature: sha256=<hex>`), and identified for de-duplication by
// `X-Chatroom-Delivery: <group>:<seq>` (the same on every retry).
import { createHmac } from "node:crypto";
import { toMessageView } from "../chat/message-view.ts";
import type { WebhookEvent } from "../protocol/webhook.ts";
import type { LoggedEvent } from "../store/store.ts";

export { DELIVERY_HEADER, SIGNATURE_HEADER, WebhookEvent } from "../protocol/webhook.ts";

/** The message is shown in its state when the webhook is sent (an edit or delete since shows). */
export function webhookEvent(group: string, e: LoggedEvent): WebhookEvent {
  if (e.operation === "delete") return { group, seq: e.seq, operation: "delete", message_id: e.message.id, user: e.userId };
  return { group, seq: e.seq, operation: e.operation, message: toMessageView(e.message), user: e.userId };
}

export const deliveryId = (group: string, seq: number) => `${group}:${seq}`;

export function sign(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}
