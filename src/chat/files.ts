// Turns a frame's `file` into bytes to store, enforcing the size cap before decoding anything.
// Every check here is one linear pass over the text: a file is up to MAX_FRAME_BYTES of
// attacker-chosen characters, and a backtracking regular expression over that much input
// overflows V8's regexp stack (a 3.2 MiB file used to be answered `internal`).
import { ChatError, type FileInput } from "../protocol/index.ts";
import type { NewAttachment } from "../store/store.ts";

/** 1 for a base64 alphabet character, 2 for whitespace (carries no data), 0 for anything else. */
const CLASS = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") CLASS[c.charCodeAt(0)] = 1;
for (const c of " \t\n\v\f\r") CLASS[c.charCodeAt(0)] = 2;
const PAD = 0x3d; // "="

/**
 * The number of bytes `text` decodes to when it is valid base64 (standard alphabet, optional
 * `=` padding, whitespace anywhere), else -1. Without padding a final group of 2 or 3
 * characters is accepted, as before; 1 is not.
 */
export function base64DecodedSize(text: string): number {
  let data = 0;
  let pad = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const k = c < 128 ? CLASS[c]! : 0;
    if (k === 2) continue;
    if (c === PAD) {
      if (++pad > 2) return -1;
      continue;
    }
    if (k !== 1 || pad > 0) return -1; // not base64, or data after the padding
    data++;
  }
  return sizeOf(data, pad);
}

/** Bytes a base64 text of `data` alphabet characters and `pad` padding characters decodes to, or -1. */
function sizeOf(data: number, pad: number): number {
  const rest = data % 4;
  if (pad > 2 || (pad > 0 ? (data + pad) % 4 !== 0 || rest < 2 : rest === 1)) return -1;
  return Math.floor(data / 4) * 3 + (rest === 0 ? 0 : rest - 1);
}

/**
 * Decodes unwrapped base64 (what browsers' btoa and FileReader produce) with native passes
 * only; null when that cannot decide (whitespace, or anything invalid: base64DecodedSize's loop
 * then does). Node's decoder skips whitespace and characters outside the alphabet, and any
 * skipped character makes the result shorter than the text's length promises; `-` and `_`
 * (which it would take as base64url) are sent to the loop first.
 */
function decodeUnwrapped(text: string, maxBytes: number): Uint8Array | null {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === PAD) end--;
  const size = sizeOf(end, text.length - end);
  const firstPad = text.indexOf("=");
  if (size === -1 || (firstPad !== -1 && firstPad < end) || text.includes("-") || text.includes("_")) return null;
  if (size > maxBytes) {
    if (/\s/.test(text)) return null; // wrapped: the loop counts what the whitespace leaves
    throw tooLarge(maxBytes);
  }
  const bytes = Buffer.from(text, "base64");
  return bytes.byteLength === size ? bytes : null;
}

const notBase64 = () => new ChatError("bad_request", "file is not valid base64");
const tooLarge = (maxBytes: number) => new ChatError("too_large", `file is larger than ${maxBytes} bytes`, "file_size");

function decodeBase64(text: string, maxBytes: number): Uint8Array {
  const fast = decodeUnwrapped(text, maxBytes);
  if (fast) return fast;
  const size = base64DecodedSize(text);
  if (size === -1) throw notBase64();
  if (size > maxBytes) throw tooLarge(maxBytes);
  // Node's decoder skips whitespace itself; the text is known valid, so nothing else is skipped.
  return Buffer.from(text, "base64");
}

/** The longest `data:<type>;<params>;base64,` head looked at; a longer one is not a data URL. */
const MAX_DATA_URL_HEAD = 512;
const MIME = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/;

/** A browser data URL's (FileReader.readAsDataURL) content type and where its base64 starts, or null. */
export function parseDataUrl(input: string): { contentType: string | null; start: number } | null {
  if (!input.startsWith("data:")) return null;
  const comma = input.indexOf(",", 5);
  if (comma === -1 || comma > MAX_DATA_URL_HEAD) return null;
  const parts = input.slice(5, comma).split(";");
  if (parts.length < 2 || parts.at(-1) !== "base64") return null;
  const type = parts[0]!;
  if (type !== "" && !MIME.test(type)) return null;
  return { contentType: type === "" ? null : type.toLowerCase(), start: comma + 1 };
}

export function decodeFile(input: FileInput, maxBytes: number): NewAttachment {
  if (typeof input === "string") {
    // The seed's bare base64 string; browsers' FileReader.readAsDataURL form is accepted too.
    const url = parseDataUrl(input);
    const contentType = url?.contentType ?? "application/octet-stream";
    return { name: "file", contentType, data: decodeBase64(url ? input.slice(url.start) : input, maxBytes) };
  }
  return { name: input.name, contentType: input.content_type, data: decodeBase64(input.data, maxBytes) };
}
