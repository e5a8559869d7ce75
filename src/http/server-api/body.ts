// Reads an HTTP request body from uWebSockets.js with a byte budget. uWS hands the body over in
// chunks whose memory it reuses, so each is copied; a body over the budget is refused as soon as
// it is known to be (Content-Length, or the running count), and an aborted request settles too.
// The copies count against the node-wide byte budget (MAX_NODE_BUFFER_BYTES, shared with
// WebSocket frames awaiting an answer) until the request is done: many large bodies at once are
// refused (429) rather than held without bound.
import type { ByteBudget } from "../../chat/budget.ts";
import { ChatError } from "../../protocol/index.ts";
import type { HttpResponse } from "../../uws/uws.ts";

export class Aborted extends Error {}

export interface BodyReader {
  /** The whole body, or a ChatError too_large past the budget, or Aborted when the client went away. */
  body: Promise<Buffer>;
  aborted: () => boolean;
  /** Gives the body's bytes back to the node's budget (idempotent): call once the request is done. */
  release: () => void;
}

/** Must be called synchronously in the route handler (it registers onData and onAborted). */
export function readBody(res: HttpResponse, maxBytes: number, contentLength: string, hold: ByteBudget): BodyReader {
  let aborted = false;
  let held = 0;
  let released = false;
  const release = () => {
    released = true; // chunks arriving after this (the request was answered early) are not kept
    hold.give(held);
    held = 0;
  };
  let settle: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  const body = new Promise<Buffer>((resolve, reject) => (settle = { resolve, reject }));
  body.catch(() => {}); // the caller may never await it (an earlier check failed)
  const finish = (outcome: Buffer | Error) => {
    if (!settle) return;
    const s = settle;
    settle = null;
    if (outcome instanceof Error) {
      release();
      s.reject(outcome);
    } else s.resolve(outcome);
  };
  res.onAborted(() => {
    aborted = true;
    finish(new Aborted("request aborted"));
  });
  const tooLarge = () => new ChatError("too_large", `request body is larger than ${maxBytes} bytes`, "frame_size");
  const declared = contentLength === "" ? NaN : Number(contentLength);
  if (declared > maxBytes) {
    finish(tooLarge());
    return { body, aborted: () => aborted, release };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((chunk, isLast) => {
    if (!settle || released) return;
    size += chunk.byteLength;
    if (size > maxBytes) return finish(tooLarge());
    if (!hold.take(chunk.byteLength)) return finish(new ChatError("rate_limited", "the node is holding too much data; retry shortly", "node_buffer"));
    held += chunk.byteLength;
    chunks.push(Buffer.from(chunk.slice(0)));
    if (isLast) finish(Buffer.concat(chunks, size));
  });
  return { body, aborted: () => aborted, release };
}
