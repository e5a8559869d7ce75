// Reads an HTTP request body from uWebSockets.js with a byte budget. uWS hands the body over in
// chunks whose memory it reuses, so each is copied; a body over the budget is refused as soon as
// it is known to be (Content-Length, or the running count), and an aborted request settles too.
import { ChatError } from "../../protocol/index.ts";
import type { HttpResponse } from "../../uws/uws.ts";

export class Aborted extends Error {}

export interface BodyReader {
  /** The whole body, or a ChatError too_large past the budget, or Aborted when the client went away. */
  body: Promise<Buffer>;
  aborted: () => boolean;
}

/** Must be called synchronously in the route handler (it registers onData and onAborted). */
export function readBody(res: HttpResponse, maxBytes: number, contentLength: string): BodyReader {
  let aborted = false;
  let settle: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  const body = new Promise<Buffer>((resolve, reject) => (settle = { resolve, reject }));
  body.catch(() => {}); // the caller may never await it (an earlier check failed)
  const finish = (outcome: Buffer | Error) => {
    if (!settle) return;
    const s = settle;
    settle = null;
    if (outcome instanceof Error) s.reject(outcome);
    else s.resolve(outcome);
  };
  res.onAborted(() => {
    aborted = true;
    finish(new Aborted("request aborted"));
  });
  const tooLarge = () => new ChatError("too_large", `request body is larger than ${maxBytes} bytes`, "frame_size");
  const declared = contentLength === "" ? NaN : Number(contentLength);
  if (declared > maxBytes) {
    finish(tooLarge());
    return { body, aborted: () => aborted };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((chunk, isLast) => {
    if (!settle) return;
    size += chunk.byteLength;
    if (size > maxBytes) return finish(tooLarge());
    chunks.push(Buffer.from(chunk.slice(0)));
    if (isLast) finish(Buffer.concat(chunks, size));
  });
  return { body, aborted: () => aborted };
}
