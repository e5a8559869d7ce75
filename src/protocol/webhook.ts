// The body of a webhook POST (see docs/protocol.md, "Webhooks"): one per stored event.
import * as v from "valibot";
import { MessageView } from "./server-events.ts";

const seq = v.pipe(v.number(), v.integer(), v.minValue(1));

/** `user` is who acted: the author for create, reply and update; who deleted for delete. */
export const WebhookEvent = v.variant("operation", [
  v.strictObject({ group: v.string(), seq, operation: v.picklist(["create", "reply", "update"]), message: MessageView, user: v.string() }),
  v.strictObject({ group: v.string(), seq, operation: v.literal("delete"), message_id: v.string(), user: v.string() }),
]);
export type WebhookEvent = v.InferOutput<typeof WebhookEvent>;

export const SIGNATURE_HEADER = "X-Chatroom-Signature";
export const DELIVERY_HEADER = "X-Chatroom-Delivery";
