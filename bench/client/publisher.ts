// A socket sending marked frames into its group, either at a fixed rate (open loop: the schedule
// does not wait for the server, so a slow server shows up as latency rather than as a politely
// reduced load) or with a fixed number of creates awaiting their ack (closed loop: measures the
// most the server sustains).
import type WebSocket from "ws";
import { ACK_MARK, createFrame, ERROR_MARK, mark, readMark, typingFrame } from "../lib/frames.ts";
import type { PublisherSpec, Window } from "../lib/ipc.ts";
import { nowUs } from "../lib/clock.ts";
import type { Recorder } from "./recorder.ts";

export class Publisher {
  private seq = 0;
  private window: Window | undefined;
  /** Frames sent inside the measured window. */
  measured = 0;

  constructor(
    readonly spec: PublisherSpec,
    private readonly ws: WebSocket,
    private readonly rec: Recorder,
  ) {
    ws.on("message", (data) => this.onMessage(data as Buffer));
  }

  private send(now: number): void {
    this.seq++;
    const { id, op } = this.spec;
    this.ws.send(op === "typing" ? typingFrame(id, this.seq, now) : createFrame(id, this.seq, now));
    if (this.rec.measured(now)) this.measured++;
  }

  begin(window: Window): void {
    this.window = window;
    if (this.spec.rate === 0) {
      const now = nowUs();
      for (let i = 0; i < this.spec.inflight; i++) this.send(now);
    }
  }

  /** Open loop: sends every frame due by now, recording how late the first of them is. */
  tick(now: number): void {
    const w = this.window;
    const { rate, phase } = this.spec;
    if (!w || rate === 0 || now >= w.stopUs) return;
    // Frame k is due at startUs + (k + phase) / rate.
    const due = Math.floor(((now - w.startUs) * rate) / 1e6 - phase) + 1;
    if (this.seq >= due) return;
    this.rec.sendLag.recordValue(now - (w.startUs + ((this.seq + phase) * 1e6) / rate));
    while (this.seq < due) this.send(now);
  }

  private onMessage(data: Buffer): void {
    const now = nowUs();
    // Error frames echo request_id too, so they are told apart first.
    if (data.indexOf(ERROR_MARK) >= 0) {
      this.rec.other(data);
      this.replenish(now);
    } else if (this.spec.op === "create" && readMark(data, ACK_MARK)) {
      if (mark.pub === this.spec.id) this.rec.record("acks", mark.sentUs, now);
      this.replenish(now);
    }
    // Anything else is the group's broadcast coming back to its sender: not measured here.
  }

  private replenish(now: number): void {
    if (this.spec.rate === 0 && this.window && now < this.window.stopUs) this.send(now);
  }
}
