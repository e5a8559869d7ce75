// A bundle: several ephemeral group frames (a presence tick's joins and leaves of one group) in
// one bus payload, so that a tick costs one bus publish per group instead of one per frame. The
// receiving node splits it and hands each frame, byte for byte as serialised by the sender, to
// its sockets: clients see exactly the frames they would have seen one by one, in order.
//
// Wire format (bus payloads only, never sent to a client): `#frames\n` then the frames joined by
// `\n`. A serialised frame is JSON without a raw newline, and every other bus payload is a frame
// that starts with `{`, so the first byte tells a bundle from a frame. Bundles carry no seq: the
// sequencer passes them straight through, like typing.
//
// Mixed fleets: a node of a version before bundles relays every payload of a group's channel to
// its sockets as it is, so it must never get one. A node therefore sends bundles only while every
// node of its fleet says, in its fleet heartbeat, that it reads them (BUNDLE_WIRE; see
// src/fleet/fleet.ts) and sends its frames one by one otherwise; every node reads both forms.

/** The bus wire version of a node that reads bundles (nodes before it are 1). */
export const BUNDLE_WIRE = 2;

const HEAD = "#frames\n";
const HASH = 0x23; // '#'
const NEWLINE = 0x0a;
const OPEN = 0x7b; // '{'
const CLOSE = 0x7d; // '}'

/** One bus payload carrying `frames` (each a serialised frame) in order. */
export function encodeBundle(frames: readonly string[]): string {
  return HEAD + frames.join("\n");
}

/** Whether a bus payload is a bundle (any payload starting with `#`; a frame starts with `{`). */
export function isBundle(payload: Uint8Array | string): boolean {
  return typeof payload === "string" ? payload.charCodeAt(0) === HASH : payload[0] === HASH;
}

/** Whether `payload`'s first bytes are the ASCII `head` (no copy). */
function startsWith(payload: Uint8Array, head: string): boolean {
  if (payload.byteLength < head.length) return false;
  for (let i = 0; i < head.length; i++) if (payload[i] !== head.charCodeAt(i)) return false;
  return true;
}

/**
 * The frames of a bundle, in order: slices of `payload` (no copy for bytes). Null for a payload
 * that starts like a bundle but is not one this node reads (another head, or a part that is not a
 * JSON object): the caller drops it whole rather than send clients half of it.
 */
export function splitBundle(payload: Uint8Array | string): (Uint8Array | string)[] | null {
  if (typeof payload === "string") {
    if (!payload.startsWith(HEAD)) return null;
    const parts = payload.slice(HEAD.length).split("\n");
    for (const p of parts) if (p.charCodeAt(0) !== OPEN || p.charCodeAt(p.length - 1) !== CLOSE) return null;
    return parts;
  }
  if (!startsWith(payload, HEAD)) return null;
  const parts: Uint8Array[] = [];
  let start = HEAD.length;
  while (start <= payload.byteLength) {
    let end = payload.indexOf(NEWLINE, start);
    if (end === -1) end = payload.byteLength;
    if (end - start < 2 || payload[start] !== OPEN || payload[end - 1] !== CLOSE) return null;
    parts.push(payload.subarray(start, end));
    start = end + 1;
  }
  return parts;
}

// A join or leave frame on its own (a fleet that does not read bundles yet sends them one by one):
// serialised by events.ts with `operation` first, so its first bytes tell. Asked of every
// ephemeral payload a node delivers (each typing frame too), so it allocates nothing.
const JOIN = '{"operation":"join"';
const LEAVE = '{"operation":"leave"';

/** Whether a bus payload is one join or leave frame (which go only to the sockets that asked for them). */
export function isPresenceFrame(payload: Uint8Array | string): boolean {
  if (typeof payload === "string") return payload.startsWith(JOIN) || payload.startsWith(LEAVE);
  return startsWith(payload, JOIN) || startsWith(payload, LEAVE);
}
