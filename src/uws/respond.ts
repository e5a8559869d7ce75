// Small helpers for answering uWS HTTP requests, including from async handlers (where a
// response may have been aborted, and writes must be corked).
import type { HttpResponse } from "./uws.ts";
import { PendingResponse } from "./stream.ts";

export const STATUS = {
  200: "200 OK",
  202: "202 Accepted",
  400: "400 Bad Request",
  401: "401 Unauthorized",
  403: "403 Forbidden",
  404: "404 Not Found",
  413: "413 Content Too Large",
  429: "429 Too Many Requests",
  500: "500 Internal Server Error",
  503: "503 Service Unavailable",
} as const;
export type Status = keyof typeof STATUS;

/** Marks a response as answered later; returns a function telling whether it was aborted. */
export function deferred(res: HttpResponse): () => boolean {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  return () => aborted;
}

/**
 * Answers with backpressure (see stream.ts): the answer stays pending until the client has read
 * it, so a client that pipelines requests without reading is cut off instead of piling answers
 * up in the node. `sendAnswer` resolves true once it is out, false when the client went away.
 */
export function sendAnswer(
  res: HttpResponse,
  status: Status,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
  aborted: () => boolean = () => false,
): Promise<boolean> {
  if (aborted()) return Promise.resolve(false);
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  return new PendingResponse(res).write(bytes, 0, bytes.byteLength, { status: STATUS[status], headers });
}

export function send(...args: Parameters<typeof sendAnswer>): void {
  void sendAnswer(...args);
}

export function sendJson(res: HttpResponse, status: Status, value: unknown, aborted?: () => boolean): void {
  send(res, status, JSON.stringify(value), { "Content-Type": "application/json" }, aborted);
}
