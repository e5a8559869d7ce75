// The SDK's GETs against a busy server: 503 and 429 are asked again after a wait (the server's
// Retry-After, else a backoff), at most `attempts` times; any other answer comes back at once.
import http from "node:http";
import type { AddressInfo } from "node:net";
import t, { type Test } from "tap";
import { fetchRetrying } from "../../src/client/http-retry.ts";

/** A server that answers each request with the next of `answers` (the last one repeats), and records when each came. */
async function server(t: Test, answers: { status: number; headers?: Record<string, string> }[]) {
  const times: number[] = [];
  const s = http.createServer((req, res) => {
    times.push(performance.now());
    const a = answers[Math.min(times.length - 1, answers.length - 1)]!;
    res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
    res.end(JSON.stringify({ n: times.length }));
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  t.teardown(() => s.close());
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/api/x`, times };
}

t.test("two 503s, then the answer: the caller gets the answer, after two waits", async (t) => {
  const { url, times } = await server(t, [{ status: 503 }, { status: 503 }, { status: 200 }]);
  const res = await fetchRetrying(url, {}, { baseMs: 40 });
  t.equal(res.status, 200);
  t.same(await res.json(), { n: 3 });
  t.equal(times.length, 3);
  // Equal jitter: the first wait is 20-40 ms, the second 40-80 ms (timers never fire early by more than a ms).
  t.ok(times[1]! - times[0]! >= 19 && times[2]! - times[1]! >= 39, `waited ${(times[1]! - times[0]!).toFixed(0)} and ${(times[2]! - times[1]!).toFixed(0)} ms`);
});

t.test("a server that stays busy: at most `attempts` requests, and the caller gets its last 503", async (t) => {
  const { url, times } = await server(t, [{ status: 503 }]);
  const res = await fetchRetrying(url, {}, { attempts: 3, baseMs: 10 });
  t.equal(res.status, 503);
  t.equal(times.length, 3);
});

t.test("Retry-After is the wait, capped at maxMs; 429 is retried too", async (t) => {
  const { url, times } = await server(t, [{ status: 429, headers: { "retry-after": "1" } }, { status: 200 }]);
  t.equal((await fetchRetrying(url, {}, { baseMs: 10 })).status, 200);
  t.ok(times[1]! - times[0]! >= 999, `waited the server's second (${(times[1]! - times[0]!).toFixed(0)} ms)`);
  const capped = await server(t, [{ status: 503, headers: { "retry-after": "3600" } }, { status: 200 }]);
  t.equal((await fetchRetrying(capped.url, {}, { maxMs: 50 })).status, 200);
  const waited = capped.times[1]! - capped.times[0]!;
  t.ok(waited >= 49 && waited < 60_000, `an hour's Retry-After waits maxMs (${waited.toFixed(0)} ms)`);
});

t.test("the defaults: 4 requests in all, the waits growing from 250 ms; a Retry-After waits at most 4 s", async (t) => {
  const { url, times } = await server(t, [{ status: 503 }]);
  t.equal((await fetchRetrying(url, {})).status, 503);
  t.equal(times.length, 4, "4 requests");
  const waits = times.slice(1).map((x, i) => x - times[i]!);
  // Equal jitter: 125-250, 250-500, 500-1,000 ms.
  t.ok(waits[0]! >= 124 && waits[1]! >= 249 && waits[2]! >= 499, `waited ${waits.map((w) => w.toFixed(0)).join(", ")} ms`);
  const capped = await server(t, [{ status: 503, headers: { "retry-after": "3600" } }, { status: 200 }]);
  t.equal((await fetchRetrying(capped.url, {})).status, 200);
  const waited = capped.times[1]! - capped.times[0]!;
  t.ok(waited >= 3_999 && waited < 60_000, `an hour's Retry-After waits the default 4 s (${waited.toFixed(0)} ms)`);
});

t.test("every other answer is the caller's at once: no retry for 404, 500 or 200", async (t) => {
  for (const status of [200, 404, 500]) {
    const { url, times } = await server(t, [{ status }]);
    t.equal((await fetchRetrying(url, {}, { baseMs: 10 })).status, status);
    t.equal(times.length, 1, `${status}: asked once`);
  }
});
