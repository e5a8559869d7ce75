// Attachments: turning a browser File (or any Blob) into the protocol's `file` object, and the
// one URL shape the SDK hands out for an attachment.
import * as v from "valibot";
import { ContentType, EntityId, type FileInput, type MessageView } from "../protocol/index.ts";

export type NamedFile = Exclude<FileInput, string>;

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** `{name, content_type, data}` for a File or Blob; `name` defaults to the File's own. */
export async function fileFromBlob(blob: Blob, name?: string): Promise<NamedFile> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  // Blob types may carry parameters (text/plain;charset=utf-8) the protocol's MIME rule refuses.
  const bare = blob.type.split(";")[0]!.trim().toLowerCase();
  const fileName = (name ?? (blob as Partial<File>).name ?? "file").replace(/[\p{Cc}]/gu, "").slice(0, 255) || "file";
  return {
    name: fileName,
    content_type: v.is(ContentType, bare) ? bare : "application/octet-stream",
    data: base64(bytes),
  };
}

/**
 * The attachment's URL path, `/files/<id>`, built from the attachment id alone (checked against
 * the id rule), or null when the message has none. Pass `token` in JWT mode: browsers cannot
 * send an Authorization header on `<img src>` or a link.
 */
export function attachmentPath(message: Pick<MessageView, "attachment">, token?: string): string | null {
  const id = message.attachment?.id;
  if (id === undefined || !v.is(EntityId, id)) return null;
  return `/files/${id}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
}
