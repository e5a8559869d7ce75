// Helpers for tests of the client SDK (src/client): clients with test-friendly timings, a
// recorder of what a client delivers, and the frames a fake server sends.
import { setTimeout as sleep } from "node:timers/promises";
import type { Test } from "tap";
import WebSocket from "ws";
import { ChatClient, ChatConnection, type ChatClientOptions, type ChatConnectionOptions, type GroupEvent, type GroupView, type OutboxStorage, type WebSocketLike } from "../../src/client/index.ts";

/** A client with test-friendly timings, closed at teardown. */
export function client(t: Test, opts: Partial<ChatClientOptions> & { group: string }): ChatClient {
  const c = new ChatClient({ WebSocket, reconnect: { baseMs: 50, maxMs: 400 }, ...opts });
  t.teardown(() => c.close());
  return c;
}

/** A multiplexed connection (`/ws/`) with test-friendly timings, closed at teardown. */
export function connection(t: Test, opts: Partial<ChatConnectionOptions>): ChatConnection {
  const c = new ChatConnection({ WebSocket, reconnect: { baseMs: 50, maxMs: 400 }, ...opts });
  t.teardown(() => c.close());
  return c;
}

/** Waits until `ok()`, failing with `what` after `ms`. */
export async function until(what: string, ok: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Records every stored event a client delivers. */
export function recorder(c: ChatClient | GroupView) {
  const events: GroupEvent[] = [];
  c.on("event", (e) => events.push(e));
  return {
    events,
    seqs: () => events.flatMap((e) => ("seq" in e ? [e.seq] : [])),
    /** Bodies of created and replied messages. */
    bodies: () => events.flatMap((e) => (e.operation === "create" || e.operation === "reply" ? [e.message.body] : [])),
    /** Bodies of created, replied and updated messages. */
    texts: () => events.flatMap((e) => (e.operation === "create" || e.operation === "reply" || e.operation === "update" ? [e.message.body] : [])),
  };
}

/** A message view and a create event of group "g", as a fake server sends them. */
export const view = (id: string, seq = 1) => ({ id, user: "x", body: id, type: "text", file: null, attachment: null, reply_to: null, created: new Date(0).toISOString(), updated: null, deleted: false, seq });
export const createEvent = (seq: number) => JSON.stringify({ operation: "create", seq, group: "g", message: view(`m${seq}`, seq) });

/** localStorage's API over a Map; `copy` is what a reloaded page would find. */
export class MemoryStorage implements OutboxStorage {
  readonly map = new Map<string, string>();
  getItem = (k: string) => this.map.get(k) ?? null;
  setItem = (k: string, v: string) => void this.map.set(k, v);
  removeItem = (k: string) => void this.map.delete(k);
  copy(): MemoryStorage {
    const c = new MemoryStorage();
    for (const [k, v] of this.map) c.map.set(k, v);
    return c;
  }
  entries(): { request_id: string; operation: string }[] {
    return [...this.map.values()].flatMap((v) => JSON.parse(v) as { request_id: string; operation: string }[]);
  }
}

/** A `ws` socket whose network can turn deaf (frames reach the server, answers are lost) or cut (nothing passes). */
export class FlakySocket implements WebSocketLike {
  static mode: "normal" | "deaf" | "cut" = "normal";
  private readonly inner: WebSocket;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(url: string) {
    this.inner = new WebSocket(url);
    this.inner.onopen = (e) => this.onopen?.(e);
    this.inner.onclose = (e) => this.onclose?.(e);
    this.inner.onerror = (e) => this.onerror?.(e);
    this.inner.onmessage = (e) => {
      if (FlakySocket.mode === "normal") this.onmessage?.(e);
    };
  }
  get readyState(): number {
    return this.inner.readyState;
  }
  send(data: string): void {
    if (FlakySocket.mode !== "cut") this.inner.send(data);
  }
  close(code?: number, reason?: string): void {
    this.inner.close(code, reason);
  }
}

