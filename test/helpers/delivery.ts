// Bookkeeping for delivery tests: a client that records every stored event (create, reply,
// update, delete) it receives, in arrival order, across reconnects, plus every answer to its
// requests; and a sender loop that keeps creating messages while a fault is injected.
import WebSocket from "ws";
import type { Test } from "tap";
import { ChatClient, wsUrl, type Frame } from "./client.ts";
import { Signal } from "./signal.ts";

export interface StoredEvent {
  seq: number;
  operation: "create" | "reply" | "update" | "delete";
  /** The message's id (message.id, or message_id for delete). */
  id: string;
  /** Which connection (0, 1, …) of this client received it. */
  conn: number;
}

export type Answer = Extract<Frame, { operation: "ack" | "error" | "history" }> & { request_id?: string };

const STORED = new Set(["create", "reply", "update", "delete"]);

/** Resolves once the socket is closed, or after `ms`. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One logical client (one user) across connections. Every stored event of every connection goes
 * into `events` in arrival order; answers are matched to requests by request_id.
 */
export class Recorder {
  readonly events: StoredEvent[] = [];
  /** `resumed` markers received, with the connection and the time. */
  readonly resumed: { seq: number; conn: number; at: number }[] = [];
  /** Every answer (ack/error/history) carrying a request_id, per request_id, in arrival order. */
  readonly answers = new Map<string, Answer[]>();
  /** When the first answer to each request_id arrived. */
  readonly answeredAt = new Map<string, number>();
  /** Errors without request_id (e.g. refusals at shutdown). */
  readonly bareErrors: Answer[] = [];
  client: ChatClient | null = null;
  /** Creates attempted so far by Senders on this client (numbers their request_ids). */
  attempts = 0;
  conns = 0;
  /** When the current connection opened. */
  openedAt = 0;
  closes: { code: number; reason: string; conn: number }[] = [];
  private readonly signal = new Signal();

  constructor(
    readonly name: string,
    readonly user: string,
  ) {}

  /** Connects (or reconnects) to a node; with `since`, asks for a replay from there. Rejects if the upgrade is refused. */
  async connect(t: Test, port: number, group: string, since?: number): Promise<ChatClient> {
    const query: Record<string, string> = { user: this.user };
    if (since !== undefined) query.since = String(since);
    const conn = this.conns++;
    const ws = new WebSocket(wsUrl(port, group, query), { perMessageDeflate: false });
    const client = new ChatClient(ws);
    // Listening before the open: a replay may follow the upgrade response in the same packet.
    ws.on("message", (data) => this.onFrame(JSON.parse(data.toString()) as Record<string, unknown>, conn));
    // A node killed under the socket is an expected end here, not an uncaught error.
    ws.on("error", () => {});
    void client.closed.then((c) => {
      this.closes.push({ ...c, conn });
      this.wake();
    });
    t.teardown(() => {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once("error", reject);
    });
    this.openedAt = Date.now();
    this.client = client;
    return client;
  }

  get open(): boolean {
    return this.client !== null && this.client.ws.readyState === WebSocket.OPEN;
  }

  private onFrame(f: Record<string, unknown>, conn: number): void {
    const op = f.operation as string;
    if (STORED.has(op)) {
      const id = op === "delete" ? (f.message_id as string) : (f.message as { id: string }).id;
      this.events.push({ seq: f.seq as number, operation: op as StoredEvent["operation"], id, conn });
    } else if (op === "resumed") {
      this.resumed.push({ seq: f.seq as number, conn, at: Date.now() });
    } else if (op === "ack" || op === "error" || op === "history") {
      const rid = f.request_id as string | undefined;
      if (rid === undefined) this.bareErrors.push(f as Answer);
      else {
        const list = this.answers.get(rid) ?? [];
        if (list.length === 0) this.answeredAt.set(rid, Date.now());
        list.push(f as Answer);
        this.answers.set(rid, list);
      }
    }
    this.wake();
  }

  private wake(): void {
    this.signal.wake();
  }

  /** Waits until `check` holds (re-checked on every frame and close); false after `ms`. */
  until(check: () => boolean, ms: number): Promise<boolean> {
    return this.signal.until(check, ms, 250);
  }

  /** The seqs of the stored events received, in arrival order. */
  get seqs(): number[] {
    return this.events.map((e) => e.seq);
  }

  /** The highest seq up to which this client has seen every event without a gap (what `since` should be). */
  get contiguous(): number {
    let n = 0;
    for (const s of this.seqs) if (s === n + 1) n = s;
    return n;
  }

  get lastSeq(): number {
    const s = this.seqs;
    return s.length ? s[s.length - 1]! : 0;
  }

  /**
   * Sends a frame with this request_id on the current connection and waits for its answer:
   * the answer, "closed" if the socket closed first, or "timeout" after `ms`.
   */
  async ask(frame: Record<string, unknown>, requestId: string, ms: number): Promise<Answer | "closed" | "timeout"> {
    const client = this.client;
    if (!client || client.ws.readyState !== WebSocket.OPEN) return "closed";
    const before = this.answers.get(requestId)?.length ?? 0;
    try {
      client.send({ ...frame, request_id: requestId });
    } catch {
      return "closed";
    }
    let result: Answer | "closed" | "timeout" = "timeout";
    await this.until(() => {
      const list = this.answers.get(requestId);
      if (list && list.length > before) {
        result = list[before]!;
        return true;
      }
      if (client.ws.readyState !== WebSocket.OPEN) {
        result = "closed";
        return true;
      }
      return false;
    }, ms);
    return result;
  }
}

export interface Outcome {
  requestId: string;
  body: string;
  /** Wall-clock time the answer (or its absence) was settled. */
  at: number;
  answer: Answer | "closed" | "timeout";
}

/**
 * Creates messages one after the other (each awaits its answer) until `stop()` is called.
 * Every attempt gets a fresh request_id and a unique body; outcomes are recorded in order.
 */
export class Sender {
  readonly outcomes: Outcome[] = [];
  private stopped = false;
  done: Promise<void> = Promise.resolve();

  constructor(
    readonly rec: Recorder,
    private readonly opts: { answerMs: number; pauseMs?: number; onUnanswered?: (o: Outcome) => Promise<void> } = { answerMs: 10_000 },
  ) {}

  start(): this {
    this.done = (async () => {
      while (!this.stopped) {
        const k = this.rec.attempts++;
        const requestId = `${this.rec.name}-${k}`;
        const body = `${this.rec.name} #${k}`;
        const answer = await this.rec.ask({ operation: "create", type: "text", body }, requestId, this.opts.answerMs);
        const o: Outcome = { requestId, body, at: Date.now(), answer };
        this.outcomes.push(o);
        if (typeof answer === "string" && this.opts.onUnanswered) await this.opts.onUnanswered(o);
        if (this.opts.pauseMs) await sleep(this.opts.pauseMs);
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  acks(): (Outcome & { answer: Extract<Answer, { operation: "ack" }> })[] {
    return this.outcomes.filter((o) => typeof o.answer !== "string" && o.answer.operation === "ack") as never;
  }
}

export const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Values that occur more than once, with their counts. */
export function repeats<T>(xs: T[]): [T, number][] {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m].filter(([, n]) => n > 1);
}

/** A short description of how `seqs` differs from 1..n, for failure messages. */
export function describeSeqs(seqs: number[], n: number): string {
  const seen = new Set(seqs);
  const missing = range(n).filter((s) => !seen.has(s));
  const dup = repeats(seqs);
  const outOfOrder: number[] = [];
  for (let i = 1; i < seqs.length; i++) if (seqs[i]! <= seqs[i - 1]!) outOfOrder.push(i);
  const extra = seqs.filter((s) => s < 1 || s > n);
  const parts = [`${seqs.length} events, expected ${n}`];
  if (missing.length) parts.push(`missing ${JSON.stringify(missing.slice(0, 30))}${missing.length > 30 ? "…" : ""}`);
  if (dup.length) parts.push(`duplicated ${JSON.stringify(dup.slice(0, 30))}`);
  if (outOfOrder.length) {
    const i = outOfOrder[0]!;
    parts.push(`${outOfOrder.length} out-of-order arrivals, first at index ${i}: …${JSON.stringify(seqs.slice(Math.max(0, i - 5), i + 5))}`);
  }
  if (extra.length) parts.push(`beyond 1..${n}: ${JSON.stringify(extra.slice(0, 10))}`);
  return parts.join("; ");
}

/** The assertion every delivery test makes: the client saw exactly 1..n, in order, each once. */
export function assertSeqs(t: Test, rec: Recorder, n: number, label = rec.name): boolean {
  const seqs = rec.seqs;
  const ok = seqs.length === n && seqs.every((s, i) => s === i + 1);
  return t.ok(ok, `${label} saw seq 1..${n} in order, each once${ok ? "" : `: ${describeSeqs(seqs, n)}`}`);
}

export interface Attempted {
  requestId: string;
  body: string;
  /** Every answer this request got, one per try (the same request_id each time). */
  answers: (Answer | "closed" | "timeout")[];
  /** The ack that ended it, if any. */
  ack: Extract<Answer, { operation: "ack" }> | null;
  /** The connection (of the Recorder) each try was sent on. */
  conns: number[];
}

/**
 * Creates messages one after another, like a client that must not lose a message: when its
 * socket closes (or the answer is `unavailable` or never comes) it reconnects through `reconnect`
 * and sends the same frame again with the SAME request_id, until it is acknowledged.
 */
export class RetryingSender {
  readonly attempts = new Map<string, Attempted>();
  private stopped = false;
  done: Promise<void> = Promise.resolve();
  reconnectErrors: string[] = [];

  constructor(
    readonly rec: Recorder,
    private readonly opts: { answerMs: number; pauseMs?: number; reconnect: (rec: Recorder) => Promise<void> },
  ) {}

  start(): this {
    this.done = (async () => {
      while (!this.stopped) {
        const k = this.rec.attempts++;
        const a: Attempted = { requestId: `${this.rec.name}-${k}`, body: `${this.rec.name} #${k}`, answers: [], ack: null, conns: [] };
        this.attempts.set(a.requestId, a);
        for (let tries = 0; tries < 50; tries++) {
          if (!this.rec.open) {
            try {
              await this.opts.reconnect(this.rec);
            } catch (err) {
              this.reconnectErrors.push((err as Error).message);
              await sleep(200);
              continue;
            }
          }
          a.conns.push(this.rec.conns - 1);
          const answer = await this.rec.ask({ operation: "create", type: "text", body: a.body }, a.requestId, this.opts.answerMs);
          a.answers.push(answer);
          if (typeof answer !== "string" && answer.operation === "ack") {
            a.ack = answer;
            break;
          }
          if (typeof answer !== "string" && answer.operation === "error" && answer.code !== "unavailable") break;
          if (answer !== "closed") await sleep(100);
        }
        if (this.opts.pauseMs) await sleep(this.opts.pauseMs);
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  acked(): Attempted[] {
    return [...this.attempts.values()].filter((a) => a.ack !== null);
  }
}

/** On each node's port, one sender `s<i>` and one listener in `g`; `listenerPrefix` names the listeners (`<prefix><i>`, user `l<i>`). */
export async function sendersAndListeners(t: Test, ports: number[], g: string, listenerPrefix = "l") {
  const senders: Recorder[] = [];
  const listeners: Recorder[] = [];
  for (const [i, port] of ports.entries()) {
    const s = new Recorder(`s${i}`, `s${i}`);
    await s.connect(t, port, g);
    senders.push(s);
    const l = new Recorder(`${listenerPrefix}${i}`, `l${i}`);
    await l.connect(t, port, g);
    listeners.push(l);
  }
  return { senders, listeners, all: [...senders, ...listeners] };
}
