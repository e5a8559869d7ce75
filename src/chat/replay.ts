// Resume with ?since=<seq>: replay the group's stored events after `since`, then hand over to
// live events with no gap and no repeat at the seam. The replay reads the database only up to
// the seq this node has already handed to its sockets; everything after that reaches the
// subscription through the node's own ordered delivery, held while the replay is sent (see
// subscription.ts). Each page is read under a node-wide replay slot, and sending pauses whenever
// the socket's queue passes the replay's buffer budget, so a replay holds at most one page plus
// that budget, and a client that stops reading parks its replay without holding a slot.
import { errorFrame, resumedFrame } from "./events.ts";
import type { Payload } from "./sequencer.ts";
import type { ResumeSource } from "../metrics/metrics.ts";

/** Where a replay reads from (the chat service). */
export interface ReplaySource {
  lastSeq(group: string): Promise<number>;
  /** How far this node has delivered the group's events. */
  delivered(group: string): number;
  /** The same, or null while the node does not know yet (not following the group). */
  deliveredExactly?(group: string): number | null;
  /** Stored events with after < seq <= until, serialised in their live shapes, page by page. */
  replay(group: string, after: number, until: number): AsyncGenerator<{ seq: number; payload: string }[]>;
}

export interface ReplaySink {
  readonly source: ReplaySource;
  /** False once the subscription closed: the replay stops at once. */
  isOpen(): boolean;
  send(payload: Payload): void;
  /** Resolves when the socket's queue is low enough to send more (or the subscription closed). */
  writable(): Promise<void>;
  /** Runs one read under the node's replay concurrency budget. */
  slot<T>(fn: () => Promise<T>): Promise<T>;
  /** Told, before `resumed` is sent, where the replay's events came from (database: at least one read). */
  served?(source: ResumeSource): void;
}

/**
 * Sends the events after `since` (or an error when `since` is ahead of the group) and the
 * `resumed` marker; returns the last seq the client now has.
 */
export async function replay(sink: ReplaySink, group: string, since: number): Promise<number> {
  const { source } = sink;
  // The usual resume (a client exactly as far as this node, as after a drain or a rebalance)
  // needs no database read: nothing to replay, and what comes next reaches it live. A storm of
  // such reconnects then costs the database nothing.
  if (since === source.deliveredExactly?.(group)) {
    sink.served?.("none");
    sink.send(resumedFrame(group, since));
    return since;
  }
  const last = await sink.slot(() => source.lastSeq(group));
  if (!sink.isOpen()) return since;
  if (since > last) {
    sink.send(errorFrame("bad_request", `since ${since} is beyond the group's last seq ${last}`, undefined, group));
    return last;
  }
  let upTo = since;
  const pages = source.replay(group, since, source.delivered(group));
  try {
    for (;;) {
      const page = await sink.slot(() => pages.next());
      if (page.done) break;
      for (const e of page.value) {
        if (!sink.isOpen()) return upTo;
        sink.send(e.payload);
        upTo = e.seq;
        await sink.writable();
      }
      if (!sink.isOpen()) return upTo;
    }
  } finally {
    await pages.return(undefined);
  }
  sink.served?.("database");
  sink.send(resumedFrame(group, upTo));
  return upTo;
}
