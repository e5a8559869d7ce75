// Helpers for tests of the client SDK (src/client): clients with test-friendly timings, a
// recorder of what a client delivers, and the frames a fake server sends.
import { setTimeout as sleep } from "node:timers/promises";
import type { Test } from "tap";
import WebSocket from "ws";
import { ChatClient, type ChatClientOptions, type GroupEvent } from "../../src/client/index.ts";

/** A client with test-friendly timings, closed at teardown. */
export function client(t: Test, opts: Partial<ChatClientOptions> & { group: string }): ChatClient {
  const c = new ChatClient({ WebSocket, reconnect: { baseMs: 50, maxMs: 400 }, ...opts });
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
export function recorder(c: ChatClient) {
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
