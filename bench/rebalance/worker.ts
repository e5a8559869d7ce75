// A rebalance client worker: holds its share of the scenario's sockets through the load balancer.
// Receivers are SDK-like: on a move (4012), a drain (1001) or a dropped connection they reconnect
// after a jittered delay and resume with `?since=<last seq taken in order>`; each records the
// latency of every event's first arrival, by the second it was sent in. Senders create messages
// open loop with a `request_id`; after a reconnect they send again every create not yet
// acknowledged (the service stores a request_id once), so a move loses nothing and the latency
// of a create delayed by a move counts from its first send.
import WebSocket from "ws";
import { nowUs } from "../lib/clock.ts";
import { createFrame, CREATE_MARK, mark, readMark, readUintAfter, SEQ_KEY, ACK_MARK, ERROR_MARK } from "../lib/frames.ts";
import { encodeHistogram, newHistogram, type Histogram } from "../lib/histogram.ts";
import type { FromRebalanceWorker, ReceiverSpec, RebalanceWorkerReport, SenderSpec, ToRebalanceWorker } from "./ipc.ts";

/** Close codes after which a client reconnects (a move, a drain, a lost connection, "try again"). */
export const RECONNECT_ON = new Set([4012, 1001, 1006, 1013]);
/** The SDK's first reconnect delay: 0.5 to 1 × its 500 ms base (src/client/chat-client.ts). */
export const reconnectDelayMs = () => 250 + Math.random() * 250;
const CREATE_EVENT = Buffer.from('"operation":"create"');
const RESUMED_EVENT = Buffer.from('"operation":"resumed"');
const ACK_EVENT = Buffer.from('"operation":"ack"');

const send = (msg: FromRebalanceWorker, then?: () => void) => process.send!(msg, undefined, {}, then);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let wsBase = "";
let closing = false;
const latencyBySecond = new Map<number, Histogram>();
/** The same, for the events a receiver got from a resume's replay (before its `resumed` marker). */
const replayedBySecond = new Map<number, Histogram>();
/** Every receiver reconnect: [closed, opened, resumed] µs and the events replayed. */
const resumes: [number, number, number, number][] = [];
const ackLatency = newHistogram();
const reconnectsUs: number[] = [];
const closeCodes: Record<string, number> = {};
let failedReconnects = 0;
let errors = 0;
const errorSamples: string[] = [];
let delivered = 0;

function recordLatency(sentUs: number, now: number, replayed: boolean): void {
  const second = Math.floor(sentUs / 1e6);
  for (const map of replayed ? [latencyBySecond, replayedBySecond] : [latencyBySecond]) {
    let h = map.get(second);
    if (!h) map.set(second, (h = newHistogram()));
    h.recordValue(Math.max(1, now - sentUs));
  }
}

function noteError(data: Buffer): void {
  errors++;
  if (errorSamples.length < 5) errorSamples.push(data.toString("utf8", 0, Math.min(300, data.length)));
}

/** One socket that reconnects by itself; `url()` is asked again for every attempt. */
abstract class Client {
  ws: WebSocket | null = null;
  private attempts = 0;
  constructor(readonly group: string) {}

  protected abstract url(): string;
  protected abstract onFrame(data: Buffer, now: number): void;
  protected onOpen(): void {}
  protected onClose(_now: number): void {}

  connect(): Promise<void> {
    const first = this.attempts++ === 0;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url(), { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 30_000 });
      let opened = false;
      ws.on("error", (err) => {
        if (!opened) reject(err);
      });
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        ws.terminate();
        reject(new Error(`HTTP ${res.statusCode} on upgrade`));
      });
      ws.once("open", () => {
        opened = true;
        this.ws = ws;
        if (!first) reconnectsUs.push(nowUs());
        this.onOpen();
        resolve();
      });
      ws.on("message", (data: Buffer) => this.onFrame(data, nowUs()));
      ws.on("close", (code) => {
        if (!opened || closing) return;
        closeCodes[code] = (closeCodes[code] ?? 0) + 1;
        this.onClose(nowUs());
        if (RECONNECT_ON.has(code)) setTimeout(() => void this.reconnect(), reconnectDelayMs());
      });
    });
  }

  private async reconnect(): Promise<void> {
    for (let i = 0; i < 50 && !closing; i++) {
      try {
        return await this.connect();
      } catch {
        failedReconnects++;
        await sleep(250 + Math.random() * 500);
      }
    }
  }
}

class Receiver extends Client {
  last = 0;
  duplicates = 0;
  gaps = 0;
  /** The current reconnect while its replay runs: [closed, opened] µs and events replayed so far. */
  private resume: [number, number, number, number] | null = null;
  private closedUs = 0;
  constructor(private readonly spec: ReceiverSpec) {
    super(spec.group);
  }

  protected url(): string {
    const since = this.last > 0 ? `&since=${this.last}` : "";
    return `${wsBase}/ws/chat/${encodeURIComponent(this.group)}/?user=${this.spec.user}${since}`;
  }

  protected override onClose(now: number): void {
    this.closedUs = now;
    this.resume = null;
  }

  protected override onOpen(): void {
    if (this.last > 0) this.resume = [this.closedUs, nowUs(), 0, 0];
  }

  protected onFrame(data: Buffer, now: number): void {
    if (data.indexOf(CREATE_EVENT) < 0) {
      if (data.indexOf(ERROR_MARK) >= 0) noteError(data);
      else if (this.resume && data.indexOf(RESUMED_EVENT) >= 0) {
        this.resume[2] = now;
        resumes.push(this.resume);
        this.resume = null;
      }
      return;
    }
    const seq = readUintAfter(data, SEQ_KEY);
    if (seq <= this.last) {
      this.duplicates++;
      return;
    }
    if (seq !== this.last + 1) this.gaps++;
    this.last = seq;
    delivered++;
    if (this.resume) this.resume[3]++;
    if (readMark(data, CREATE_MARK)) recordLatency(mark.sentUs, now, this.resume !== null);
  }
}

class Sender extends Client {
  private readonly pending = new Map<string, { frame: string; sentUs: number }>();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  sent = 0;
  acked = 0;
  constructor(readonly spec: SenderSpec) {
    super(spec.group);
  }

  protected url(): string {
    return `${wsBase}/ws/chat/${encodeURIComponent(this.group)}/?user=w${this.spec.id}`;
  }

  get unacked(): number {
    return this.pending.size;
  }

  /** After a reconnect: every create not yet acknowledged goes again, in order. */
  protected override onOpen(): void {
    if (this.seq === 0) return;
    for (const p of this.pending.values()) this.ws!.send(p.frame);
  }

  protected onFrame(data: Buffer, now: number): void {
    if (data.indexOf(ACK_EVENT) >= 0 && readMark(data, ACK_MARK)) {
      const key = `${mark.pub}_${mark.seq}`;
      const p = this.pending.get(key);
      if (!p) return; // an ack for a create sent twice
      this.pending.delete(key);
      this.acked++;
      ackLatency.recordValue(Math.max(1, now - p.sentUs));
    } else if (data.indexOf(ERROR_MARK) >= 0) {
      noteError(data);
    }
  }

  start(atUs: number): void {
    const periodUs = 1e6 / this.spec.rate;
    let due = atUs + this.spec.phase * periodUs;
    const tick = () => {
      const now = nowUs();
      while (due <= now) {
        const sentUs = Math.round(due);
        const n = ++this.seq;
        const frame = createFrame(this.spec.id, n, sentUs);
        this.pending.set(`${this.spec.id}_${n}`, { frame, sentUs });
        if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(frame);
        this.sent++;
        due += periodUs;
      }
      this.timer = setTimeout(tick, Math.max(1, (due - nowUs()) / 1000));
    };
    this.timer = setTimeout(tick, Math.max(0, (due - nowUs()) / 1000));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

const receivers: Receiver[] = [];
const senders: Sender[] = [];

async function open(msg: Extract<ToRebalanceWorker, { type: "open" }>): Promise<void> {
  wsBase = msg.wsBase;
  const clients: Client[] = [...msg.receivers.map((r) => new Receiver(r)), ...msg.senders.map((s) => new Sender(s))];
  for (const c of clients) (c instanceof Receiver ? receivers : senders).push(c as never);
  let failed = 0;
  const samples: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < clients.length) {
      const c = clients[next++]!;
      // A busy node may turn one away: try again, a bounded number of times, as any client would.
      for (let i = 0; ; i++) {
        try {
          await c.connect();
          break;
        } catch (err) {
          if (i >= 9) {
            failed++;
            if (samples.length < 5) samples.push(String(err));
            break;
          }
          await sleep(100 + Math.random() * 200);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, msg.concurrency) }, lane));
  send({ type: "opened", failed, errorSamples: samples });
}

function report(): RebalanceWorkerReport {
  const ackedPerGroup: Record<string, number> = {};
  for (const s of senders) ackedPerGroup[s.spec.group] = (ackedPerGroup[s.spec.group] ?? 0) + s.acked;
  return {
    receivers: receivers.map((r) => ({ group: r.group, last: r.last, duplicates: r.duplicates, gaps: r.gaps })),
    latencyBySecond: Object.fromEntries([...latencyBySecond].map(([s, h]) => [String(s), encodeHistogram(h)])),
    replayedBySecond: Object.fromEntries([...replayedBySecond].map(([s, h]) => [String(s), encodeHistogram(h)])),
    resumes,
    ackLatency: encodeHistogram(ackLatency),
    reconnectsUs,
    closeCodes,
    failedReconnects,
    sent: senders.reduce((a, s) => a + s.sent, 0),
    acked: senders.reduce((a, s) => a + s.acked, 0),
    unacked: senders.reduce((a, s) => a + s.unacked, 0),
    errors,
    errorSamples,
    ackedPerGroup,
  };
}

process.on("message", (msg: ToRebalanceWorker) => {
  switch (msg.type) {
    case "open":
      void open(msg);
      break;
    case "start":
      for (const s of senders) s.start(msg.atUs);
      break;
    case "stop-sending":
      for (const s of senders) s.stop();
      break;
    case "progress":
      send({ type: "progress", delivered, unacked: senders.reduce((a, s) => a + s.unacked, 0), open: [...receivers, ...senders].filter((c) => c.ws?.readyState === WebSocket.OPEN).length });
      break;
    case "collect":
      send({ type: "report", report: report() });
      break;
    case "close":
      closing = true;
      for (const c of [...receivers, ...senders]) c.ws?.terminate();
      send({ type: "closed" }, () => process.exit(0));
      break;
  }
});
// An orphaned worker would keep thousands of sockets open on a shared machine.
process.on("disconnect", () => process.exit(0));
