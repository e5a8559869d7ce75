// GET requests of the SDK (the members' read markers) that meet a busy server: a 503 (the node's
// database did not answer in time, its download budget is full) or a 429 is asked again after a
// backoff, as the socket reconnects, instead of failing the caller at once. Any other answer,
// success or failure, is the caller's at once.
//
// Bounds: at most `attempts` requests (default 4); each wait is the server's `Retry-After` when it
// sends one (seconds), else the equal-jitter backoff of backoff.ts, and never more than `maxMs`.
import { backoffDelay } from "./backoff.ts";

export interface RetryOptions {
  /** Requests in all, the first included. Default 4. */
  attempts?: number;
  /** First wait's ceiling. Default 250. */
  baseMs?: number;
  /** Longest wait. Default 4000. */
  maxMs?: number;
}

/** Answers worth asking again after a wait. */
const RETRY_STATUS = new Set([429, 503]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `fetch(url, init)`, asked again on 503 and 429 (see the top of the file); resolves with the last answer. */
export async function fetchRetrying(url: URL | string, init: RequestInit, opts: RetryOptions = {}, doFetch: typeof fetch = fetch): Promise<Response> {
  const attempts = Math.max(1, opts.attempts ?? 4);
  const backoff = { baseMs: opts.baseMs ?? 250, maxMs: opts.maxMs ?? 4_000, factor: 2 };
  for (let attempt = 0; ; attempt++) {
    const res = await doFetch(url, init);
    if (!RETRY_STATUS.has(res.status) || attempt + 1 >= attempts) return res;
    await res.body?.cancel().catch(() => {});
    const after = Number(res.headers.get("retry-after"));
    const wait = Number.isFinite(after) && after > 0 ? after * 1_000 : backoffDelay(attempt, backoff);
    await sleep(Math.min(wait, backoff.maxMs));
  }
}
