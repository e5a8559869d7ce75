// Many light WebSocket clients for scale tests (thousands per test process): each is one user in
// one group that records the seq of every stored event it receives, across connections, and
// reconnects by itself when the server closes it with one of the given codes, resuming with
// `?since=<last gap-free seq>` like the SDK. Every connect and close is timestamped, so a test
// can compute reconnect rates.
import WebSocket from "ws";
import type { Test } from "tap";
import { wsUrl } from "./client.ts";

const STORED = /"operation":"(create|reply|update|delete)"/;
const SEQ = /"seq":(\d+)/;

export interface SwarmOptions {
  /** Where a (re)connection goes: a port per attempt (`client.conns` is 0 for the first). */
  port: (client: SwarmClient) => number;
  /** Close codes after which the client reconnects (others end it); the first is the one under test. */
  reconnectOn: number[];
  /** Delay before a reconnect: jitter, as the SDK does. Default none. */
  reconnectDelayMs?: () => number;
}

export class SwarmClient {
  readonly seqs: number[] = [];
  /** Each close of an opened socket: its code and reason, and the socket error before it if any (a reset or a protocol error is what turns a close into 1006). */
  readonly closes: { code: number; at: number; reason: string; error?: string }[] = [];
  /** When each connection after the first opened. */
  readonly reconnectedAt: number[] = [];
  ws: WebSocket | null = null;
  conns = 0;
  private ended = false;

  constructor(
    readonly user: string,
    readonly group: string,
    private readonly swarm: Swarm,
  ) {}

  /** The highest seq up to which every event arrived (what `since` resumes from). */
  get contiguous(): number {
    let n = 0;
    for (const s of this.seqs) if (s === n + 1) n = s;
    return n;
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  connect(): Promise<void> {
    const first = this.conns === 0;
    const port = this.swarm.opts.port(this);
    this.conns++;
    const query: Record<string, string> = { user: this.user };
    if (!first) query.since = String(this.contiguous);
    const ws = new WebSocket(wsUrl(port, this.group, query), { perMessageDeflate: false });
    this.ws = ws;
    ws.on("message", (data) => {
      const s = data.toString();
      if (!STORED.test(s)) return;
      const m = SEQ.exec(s);
      if (m) this.seqs.push(Number(m[1]));
    });
    let error: string | undefined;
    ws.on("error", (err) => (error ??= `${(err as NodeJS.ErrnoException).code ?? ""} ${err.message}`.trim()));
    let opened = false;
    ws.once("open", () => (opened = true));
    ws.on("close", (code, reason) => {
      if (!opened) return; // a refused attempt: its caller retries
      this.closes.push({ code, at: Date.now(), reason: reason.toString(), ...(error === undefined ? {} : { error }) });
      if (this.ended || this.ws !== ws || !this.swarm.opts.reconnectOn.includes(code)) return;
      // The close under test (the first code listed) follows reconnectDelayMs; a survivor turning
      // the client away (1013 "retry", 1006) gets a jittered backoff, as the SDK does, so the
      // retries do not become a storm of their own.
      const delay = code === this.swarm.opts.reconnectOn[0] ? (this.swarm.opts.reconnectDelayMs?.() ?? 0) : 500 + Math.random() * 1_000;
      setTimeout(() => void this.reconnect(), delay);
    });
    return new Promise<void>((resolve, reject) => {
      ws.once("open", () => {
        if (!first) this.reconnectedAt.push(Date.now());
        resolve();
      });
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        ws.terminate();
        reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
      });
      ws.once("error", reject);
    });
  }

  private async reconnect(): Promise<void> {
    // A refused or failed attempt (the node is going away) is retried, a bounded number of times.
    for (let i = 0; i < 50 && !this.ended; i++) {
      try {
        await this.connect();
        return;
      } catch {
        this.swarm.failedReconnects++;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  }

  end(): void {
    this.ended = true;
    this.ws?.terminate();
  }
}

export class Swarm {
  readonly clients: SwarmClient[] = [];
  failedReconnects = 0;
  /** Refused or failed first connects (retried). */
  failedConnects = 0;

  constructor(
    t: Test,
    readonly opts: SwarmOptions,
  ) {
    t.teardown(() => this.end());
  }

  /** Opens `n` clients over `groups`, `parallel` connects at a time. */
  async open(n: number, groups: string[], prefix: string, parallel = 200): Promise<SwarmClient[]> {
    const made = Array.from({ length: n }, (_, i) => new SwarmClient(`${prefix}${i}`, groups[i % groups.length]!, this));
    this.clients.push(...made);
    // A node busy with thousands of upgrades may turn one away (503 when its bus subscribe is
    // slow): like any client, try again, a bounded number of times.
    const first = async (c: SwarmClient) => {
      for (let i = 0; ; i++) {
        try {
          return await c.connect();
        } catch (err) {
          c.conns = 0;
          if (i >= 9) throw err;
          this.failedConnects++;
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
        }
      }
    };
    for (let i = 0; i < made.length; i += parallel) await Promise.all(made.slice(i, i + parallel).map(first));
    return made;
  }

  /** Every reconnect's time, sorted. */
  reconnectTimes(): number[] {
    return this.clients.flatMap((c) => c.reconnectedAt).sort((a, b) => a - b);
  }

  end(): void {
    for (const c of this.clients) c.end();
  }
}

/** The most events in any window of `windowMs` (sliding over the event times), scaled to per second. */
export function peakRate(times: number[], windowMs = 1_000): number {
  let peak = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return (peak * 1000) / windowMs;
}
