// Resume with ?since=<seq>: replay the group's stored events after `since`, then hand over to
// live events with no gap and no repeat at the seam. The replay reads the database only up to
// the seq this node has already handed to its sockets; everything after that reaches the socket
// through the node's own ordered delivery, held while the replay is sent. At the seam, held
// events the client already has are dropped by seq, and the socket joins the live topic in the
// same tick as the last held event is sent, so nothing can slip in between. When the client is
// ahead of this node (it came from a node that had delivered more), the socket keeps holding
// until this node catches up to where the client is.
import { errorFrame, resumedFrame } from "../chat/events.ts";
import type { ChatService } from "../chat/service.ts";
import type { Payload } from "../chat/sequencer.ts";

export interface ReplaySink {
  send(payload: Payload): void;
  isClosed(): boolean;
  /** Resolves when the socket's send buffer is low enough to send more. */
  writable(): Promise<void>;
}

/**
 * Sends the events after `since` (or an error when `since` is ahead of the group) and the
 * `resumed` marker; returns the last seq the client now has.
 */
export async function replay(service: ChatService, sink: ReplaySink, group: string, since: number): Promise<number> {
  // The usual resume (a client as far as this node, as after a drain or a rebalance) needs no
  // database read: there is nothing to replay, and whatever comes next reaches it live. A storm of
  // reconnects then costs the database nothing.
  if (since === service.deliveredExactly(group)) {
    sink.send(resumedFrame(group, since));
    return since;
  }
  const last = await service.lastSeq(group);
  if (since > last) {
    sink.send(errorFrame("bad_request", `since ${since} is beyond the group's last seq ${last}`, undefined, group));
    return last;
  }
  let upTo = since;
  for await (const page of service.replay(group, since, service.delivered(group))) {
    for (const e of page) {
      if (sink.isClosed()) return upTo;
      sink.send(e.payload);
      upTo = e.seq;
    }
    await sink.writable();
  }
  sink.send(resumedFrame(group, upTo));
  return upTo;
}

/** `?since=` as the contract allows it: an integer >= 0; null when absent, undefined when invalid. */
export function parseSince(raw: string | null): number | null | undefined {
  if (raw === null) return null;
  if (!/^\d{1,10}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n <= 2 ** 31 - 1 ? n : undefined;
}
