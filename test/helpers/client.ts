// A real WebSocket client for tests: every frame it receives is checked against the protocol's
// server-event schemas, queued, and awaited by predicate.
import * as v from "valibot";
import WebSocket from "ws";
import type { Test } from "tap";
import { ServerEvent } from "../../src/protocol/index.ts";

export type Frame = v.InferOutput<typeof ServerEvent>;
type Json = Record<string, unknown>;

export class ChatClient {
  readonly received: Frame[] = [];
  private waiters: (() => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;
  private counter = 0;
  /** The close code and reason once the socket closed, for failure messages. */
  private closedWith: string | null = null;

  /** `presence`: keep join/leave frames (other tests ignore them: they come with every `?user=` socket). */
  constructor(readonly ws: WebSocket, opts: { presence?: boolean } = {}) {
    ws.on("message", (data, isBinary) => {
      const parsed = v.safeParse(ServerEvent, JSON.parse(data.toString()));
      if (!parsed.success) throw new Error(`server sent a frame outside the protocol: ${data.toString()} (${parsed.issues[0].message})`);
      if (isBinary) throw new Error("server sent a binary frame");
      if (!opts.presence && (parsed.output.operation === "join" || parsed.output.operation === "leave")) return;
      this.received.push(parsed.output);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => {
      this.closedWith = `${code} ${reason.toString()}`;
      resolve({ code, reason: reason.toString() });
      for (const w of this.waiters.splice(0)) w();
    }));
  }

  send(frame: Json | string): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The next received frame (after those already taken) that matches; waits up to `ms`. */
  async next(match: (f: Frame) => boolean = () => true, ms = 5_000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (let i = 0; i < this.received.length; i++) {
        const f = this.received[i]!;
        if (match(f)) {
          this.received.splice(i, 1);
          return f;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState === WebSocket.CLOSED) {
        const closed = this.closedWith === null ? "" : `; the socket closed (${this.closedWith})`;
        throw new Error(`no matching frame within ${ms} ms; unclaimed: ${JSON.stringify(this.received)}${closed}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends a frame with a fresh request_id and returns the ack, error or history answering it. */
  async request(frame: Json, ms?: number): Promise<Frame & Json> {
    const request_id = `r${++this.counter}`;
    this.send({ ...frame, request_id });
    return (await this.next((f) => "request_id" in f && f.request_id === request_id, ms)) as Frame & Json;
  }

  /** Fails if any unclaimed frame arrives within `ms`. */
  async nothingMore(t: Test, ms = 300): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    t.same(this.received, [], "no further frames");
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }
}

export function wsUrl(port: number, group: string, query: Record<string, string> = {}): string {
  const q = new URLSearchParams(query).toString();
  return `ws://127.0.0.1:${port}/ws/chat/${group}/${q ? `?${q}` : ""}`;
}

/**
 * Opens `url` as a real client does: a 503 (the node could not subscribe to the group's channel
 * within its join timeout, which a machine at load 30 can make it miss) is retried with backoff
 * for up to 15 s; any other refusal, or an error, rejects at once. Closed at teardown.
 */
async function open(t: Test, url: string, opts: { presence?: boolean } = {}): Promise<ChatClient> {
  const deadline = Date.now() + 15_000;
  for (let backoff = 100; ; backoff = Math.min(backoff * 2, 2_000)) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    // Listening from the start: a frame that arrives with the 101 is emitted before a promise continuation runs.
    const client = new ChatClient(ws, opts);
    t.teardown(() => {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
    });
    const status = await new Promise<number>((resolve, reject) => {
      ws.once("open", () => resolve(101));
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      ws.once("error", reject);
    });
    if (status === 101) return client;
    ws.terminate();
    if (status !== 503 || Date.now() + backoff > deadline) throw new Error(`upgrade refused: HTTP ${status}`);
    await new Promise((r) => setTimeout(r, backoff));
  }
}

/** Opens any WebSocket URL of the node (retrying a 503, as clients do); closed at teardown. `presence`: keep join/leave frames, whatever the URL asked. */
export function connectUrl(t: Test, url: string, opts: { presence?: boolean } = {}): Promise<ChatClient> {
  return open(t, url, opts);
}

/** Connects and waits for the open (retrying a 503, as clients do); closed at teardown. */
export function connect(t: Test, port: number, group: string, query: Record<string, string> = {}, opts: { presence?: boolean } = {}): Promise<ChatClient> {
  // Join/leave events come only to the sockets that ask for them (`?presence=1`).
  return open(t, wsUrl(port, group, opts.presence ? { presence: "1", ...query } : query), opts);
}

/** The HTTP status an upgrade attempt gets (101 when it succeeds). */
export function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => {
      ws.terminate();
      resolve(101);
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once("error", (err) => {
      if (ws.readyState !== WebSocket.CLOSED) reject(err);
    });
  });
}

/** Connects to the multiplexed endpoint `/ws/` and waits for the open (retrying a 503); closed at teardown. */
export function connectMux(t: Test, port: number, query: Record<string, string>): Promise<ChatClient> {
  return open(t, `ws://127.0.0.1:${port}/ws/?${new URLSearchParams(query)}`);
}
