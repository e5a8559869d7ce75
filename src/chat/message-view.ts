// How a stored message is shown to clients: the one mapping from rows to the protocol's shape.
import type { MessageView } from "../protocol/index.ts";
import type { StoredMessage } from "../store/store.ts";

export const fileUrl = (attachmentId: string) => `/files/${attachmentId}`;

export function toMessageView(m: StoredMessage): MessageView {
  const a = m.deleted ? null : m.attachment;
  return {
    id: m.id,
    user: m.userId,
    body: m.deleted ? null : m.body,
    type: m.type,
    file: a ? fileUrl(a.id) : null,
    attachment: a ? { id: a.id, name: a.name, content_type: a.contentType, size: a.size } : null,
    reply_to: m.replyToId,
    created: m.createdAt.toISOString(),
    updated: m.updatedAt ? m.updatedAt.toISOString() : null,
    deleted: m.deleted,
    seq: m.seq,
  };
}
