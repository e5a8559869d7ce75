// One webhook POST over node:http(s) with a keep-alive agent: a fraction of fetch's cost per
// request (no web streams, no per-request AbortSignal plumbing), which matters at thousands of
// deliveries a second. Resolves with the status, or rejects on a network error, the timeout, or
// `signal` (shutdown); the response body is read and discarded.
import http from "node:http";
import https from "node:https";

export interface Poster {
  post(body: string, headers: Record<string, string>, timeoutMs: number, signal: AbortSignal): Promise<number>;
  close(): void;
}

export class TimeoutError extends Error {
  override name = "TimeoutError";
}

export function poster(url: string, maxSockets: number): Poster {
  const target = new URL(url);
  const lib = target.protocol === "https:" ? https : http;
  const agent = new lib.Agent({ keepAlive: true, maxSockets });
  return {
    post: (body, headers, timeoutMs, signal) =>
      new Promise<number>((resolve, reject) => {
        const req = lib.request(target, {
          method: "POST",
          agent,
          headers: { ...headers, "Content-Length": String(Buffer.byteLength(body)) },
          signal,
        });
        const timer = setTimeout(() => req.destroy(new TimeoutError(`no answer within ${timeoutMs} ms`)), timeoutMs);
        req.once("response", (res) => {
          res.resume();
          res.once("end", () => {
            clearTimeout(timer);
            resolve(res.statusCode ?? 0);
          });
          res.once("error", (err) => {
            clearTimeout(timer);
            reject(err);
          });
        });
        req.once("error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}
