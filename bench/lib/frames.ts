// Client frames that carry their own send time, and the cheap parsing that reads it back.
//
// Every measured frame carries a mark "<publisher>_<seq>_<sentUs>": in `user` for typing (the
// only free-form field a typing event echoes; `typing_status` must match ^[a-z_]{1,32}$), in
// `body` for create, and in `request_id` so the ack can be timed too. A one-letter tag before
// the mark tells a typing user ("t…") from a create body ("c…"). Receivers search the raw bytes
// for `"user":"t` / `"body":"c` / `"request_id":"` instead of JSON.parse, so the generator's
// cost per delivery stays small and independent of the server's key order.

export type Op = "typing" | "create";

export function typingFrame(pub: number, seq: number, sentUs: number): string {
  return `{"operation":"typing","user":"t${pub}_${seq}_${sentUs}","typing_status":"typing"}`;
}

export function createFrame(pub: number, seq: number, sentUs: number): string {
  const mark = `${pub}_${seq}_${sentUs}`;
  return `{"operation":"create","user":"w${pub}","type":"text","body":"c${mark}","request_id":"${mark}"}`;
}

export const TYPING_MARK = Buffer.from('"user":"t');
export const CREATE_MARK = Buffer.from('"body":"c');
export const ACK_MARK = Buffer.from('"request_id":"');
export const ERROR_MARK = Buffer.from('"error"');

/** The last mark read by readMark; reused so parsing allocates nothing. */
export const mark = { pub: 0, seq: 0, sentUs: 0 };

const UNDERSCORE = 0x5f;
const QUOTE = 0x22;
let pos = 0;

/**
 * Reads decimal digits at `pos` and then `terminator` (unless it is -1: then any non-digit ends
 * the number and stays unread); -1 when there are no digits or the terminator is missing.
 */
function readUint(buf: Buffer, terminator: number): number {
  const start = pos;
  let n = 0;
  for (; pos < buf.length; pos++) {
    const c = buf[pos]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
  }
  if (pos === start) return -1;
  if (terminator === -1) return n;
  if (buf[pos] !== terminator) return -1;
  pos++;
  return n;
}

export const SEQ_KEY = Buffer.from('"seq":');

/** The unsigned integer right after the first `needle` in `buf`, or -1. */
export function readUintAfter(buf: Buffer, needle: Buffer): number {
  const at = buf.indexOf(needle);
  if (at < 0) return -1;
  pos = at + needle.length;
  return readUint(buf, -1);
}

/**
 * Finds `needle` in `buf` and reads the mark that follows it into `mark`.
 * Returns false when the needle is absent or the mark is malformed.
 */
export function readMark(buf: Buffer, needle: Buffer): boolean {
  const at = buf.indexOf(needle);
  if (at < 0) return false;
  pos = at + needle.length;
  const pub = readUint(buf, UNDERSCORE);
  const seq = pub < 0 ? -1 : readUint(buf, UNDERSCORE);
  const sentUs = seq < 0 ? -1 : readUint(buf, QUOTE);
  if (sentUs < 0) return false;
  mark.pub = pub;
  mark.seq = seq;
  mark.sentUs = sentUs;
  return true;
}
