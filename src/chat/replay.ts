// Resume with ?since=<seq>: replay the group's stored events after `since`, then hand over to
// live events with no gap and no repeat at the seam. The replay sends events only up to the seq
// this node has already handed to its sockets; everything after that reaches the subscription
// through the node's own ordered delivery, held while the replay is sent (see subscription.ts).
//
// Each event comes from the node's recent events in memory when they still hold it (the usual
// resume, a client a few events behind, then costs no read and no slot), else from the database:
// a page per read, each under a node-wide replay slot. Sending pauses whenever the socket's queue
// passes the replay's buffer budget, so a replay holds at most one page plus that budget, and a
// client that stops reading parks its replay without holding a slot.
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
  /** One page of stored events with after < seq <= until, in seq order, serialised in their live shapes (message in its current state). */
  page(group: string, after: number, until: number): Promise<{ seq: number; payload: string }[]>;
  /** Event `seq` of the group from the node's recent events, as a page would give it; undefined when not held. */
  recent?(group: string, seq: number): Payload | undefined;
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
  const at = source.deliveredExactly ? source.deliveredExactly(group) : null;
  // The usual resume (a client exactly as far as this node, as after a drain or a rebalance)
  // needs no database read: nothing to replay, and what comes next reaches it live. A storm of
  // such reconnects then costs the database nothing.
  if (since === at) {
    sink.served?.("none");
    sink.send(resumedFrame(group, since));
    return since;
  }
  const until = source.delivered(group);
  let read = false;
  // A client behind this node's known position is behind the group's last seq too: no need to
  // ask. Otherwise (ahead of this node, or the position unknown) the group's last seq decides.
  if (at === null || since > until) {
    read = true;
    const last = await sink.slot(() => source.lastSeq(group));
    if (!sink.isOpen()) return since;
    if (since > last) {
      sink.send(errorFrame("bad_request", `since ${since} is beyond the group's last seq ${last}`, undefined, group));
      return last;
    }
  }
  let upTo = since;
  while (upTo < until) {
    const kept = source.recent?.(group, upTo + 1);
    if (kept !== undefined) {
      if (!sink.isOpen()) return upTo;
      sink.send(kept);
      upTo++;
      await sink.writable();
      continue;
    }
    const from = upTo;
    // Once its turn comes, another resume's read may have left the events in memory.
    const page = await sink.slot(async () => (source.recent?.(group, from + 1) === undefined ? source.page(group, from, until) : null));
    if (page === null) continue;
    read = true;
    if (page.length === 0) break;
    for (const e of page) {
      if (!sink.isOpen()) return upTo;
      sink.send(e.payload);
      upTo = e.seq;
      await sink.writable();
    }
  }
  if (!sink.isOpen()) return upTo;
  sink.served?.(read ? "database" : upTo > since ? "memory" : "none");
  sink.send(resumedFrame(group, upTo));
  return upTo;
}
