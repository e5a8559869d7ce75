// Small helpers for answering uWS HTTP requests, including from async handlers (where a
// response may have been aborted, and writes must be corked).
import type { HttpResponse } from "../gateway/uws.ts";

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

export function send(
  res: HttpResponse,
  status: Status,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
  aborted: () => boolean = () => false,
): void {
  if (aborted()) return;
  res.cork(() => {
    res.writeStatus(STATUS[status]);
    for (const [k, val] of Object.entries(headers)) res.writeHeader(k, val);
    res.end(body);
  });
}

export function sendJson(res: HttpResponse, status: Status, value: unknown, aborted?: () => boolean): void {
  send(res, status, JSON.stringify(value), { "Content-Type": "application/json" }, aborted);
}
