// Turns a frame's `file` into bytes to store, enforcing the size cap before decoding anything.
import { ChatError, type FileInput } from "../protocol/index.ts";
import type { NewAttachment } from "../store/store.ts";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const DATA_URL = /^data:([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*)?(?:;[^,;]*)*;base64,/;

/** Bytes a base64 text decodes to, from its length alone. */
const decodedSize = (b64: string) => Math.floor((b64.length * 3) / 4) - (b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0);

function decodeBase64(text: string, maxBytes: number): Uint8Array {
  // Encoders that wrap lines (MIME, `base64` CLI) are common; whitespace carries no data.
  const b64 = /\s/.test(text) ? text.replace(/\s+/g, "") : text;
  if (decodedSize(b64) > maxBytes) throw new ChatError("too_large", `file is larger than ${maxBytes} bytes`, "file_size");
  if (!BASE64.test(b64)) throw new ChatError("bad_request", "file is not valid base64");
  return Buffer.from(b64, "base64");
}

export function decodeFile(input: FileInput, maxBytes: number): NewAttachment {
  if (typeof input === "string") {
    // The seed's bare base64 string; browsers' FileReader.readAsDataURL form is accepted too.
    const m = DATA_URL.exec(input);
    const contentType = m?.[1]?.toLowerCase() ?? "application/octet-stream";
    return { name: "file", contentType, data: decodeBase64(m ? input.slice(m[0].length) : input, maxBytes) };
  }
  return { name: input.name, contentType: input.content_type, data: decodeBase64(input.data, maxBytes) };
}
