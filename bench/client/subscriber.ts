// A listening socket's frame handler: times each marked event and checks delivery semantics,
// namely each publisher's frames arrive once (duplicates) and in the order sent (reordered), and
// a group's create events carry seq 1, 2, 3… with no gap or repeat (the contract's promise).
import type WebSocket from "ws";
import { nowUs } from "../lib/clock.ts";
import { CREATE_MARK, mark, readMark, readUintAfter, SEQ_KEY, TYPING_MARK } from "../lib/frames.ts";
import type { Recorder } from "./recorder.ts";

/** How far back a publisher's sequence numbers are remembered to tell a repeat from a late one. */
const WINDOW = 256;

class PublisherStream {
  high = 0;
  private readonly seen = new Int32Array(WINDOW);

  /** "dup" for a repeat, "late" for a first arrival behind a later frame, else "next". */
  arrive(seq: number): "next" | "late" | "dup" {
    const slot = seq % WINDOW;
    if (seq > this.high - WINDOW && this.seen[slot] === seq) return "dup";
    this.seen[slot] = seq;
    if (seq < this.high) return "late";
    this.high = seq;
    return "next";
  }
}

export function subscriberHandler(rec: Recorder): (data: WebSocket.RawData) => void {
  const streams = new Map<number, PublisherStream>();
  let groupSeq = 0;
  return (raw) => {
    const now = nowUs();
    const data = raw as Buffer;
    let kind: "typing" | "create";
    if (readMark(data, TYPING_MARK)) {
      kind = "typing";
    } else if (readMark(data, CREATE_MARK)) {
      kind = "create";
      const seq = readUintAfter(data, SEQ_KEY);
      if (groupSeq !== 0 && seq !== groupSeq + 1) rec.seqViolations++;
      groupSeq = seq;
    } else {
      return rec.other(data);
    }
    let stream = streams.get(mark.pub);
    if (!stream) streams.set(mark.pub, (stream = new PublisherStream()));
    const arrival = stream.arrive(mark.seq);
    const measured = rec.measured(mark.sentUs);
    if (arrival === "dup") {
      if (measured) rec.duplicates++;
      return;
    }
    if (arrival === "late" && measured) rec.reordered++;
    rec.record(kind, mark.sentUs, now);
  };
}
