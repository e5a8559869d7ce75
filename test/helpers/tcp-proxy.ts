// A TCP proxy between a node and a backing service (PostgreSQL, Redis), for cutting the link in
// tests. Modes:
//   - "open":    every connection is piped to the target;
//   - "refuse":  the listening socket is closed, new connections get ECONNREFUSED;
//   - "reset":   still listening, but each new connection is destroyed at once;
//   - "stall":   connections are accepted and kept, but nothing flows either way (a black hole).
// `cut()` also destroys (or, for "stall", freezes) every connection already piped.
import net from "node:net";
import type { Test } from "tap";

export type ProxyMode = "open" | "refuse" | "reset" | "stall";

interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
}

export class TcpProxy {
  private server: net.Server | null = null;
  private readonly pairs = new Set<Pair>();
  private mode: ProxyMode = "open";
  /** Connections accepted since the start, whatever happened to them. */
  accepted = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    public port: number,
  ) {}

  /** Starts a proxy on an ephemeral port (stopped at teardown). */
  static async start(t: Test, targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    const p = new TcpProxy(targetHost, targetPort, 0);
    await p.listen();
    t.teardown(() => p.close());
    return p;
  }

  get current(): ProxyMode {
    return this.mode;
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((client) => this.accept(client));
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => {
        server.off("error", reject);
        this.server = server;
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    client.on("error", () => {});
    if (this.mode === "reset" || this.mode === "refuse") {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: null };
    this.pairs.add(pair);
    client.once("close", () => this.pairs.delete(pair));
    if (this.mode === "stall") {
      client.pause();
      return;
    }
    this.pipe(pair);
  }

  private pipe(pair: Pair): void {
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort });
    pair.upstream = upstream;
    upstream.on("error", () => pair.client.destroy());
    upstream.once("close", () => pair.client.destroy());
    // Forwarded by hand (not pipe) so that the traffic can be watched and one direction muted.
    pair.client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      if (this.trigger && chunk.includes(this.trigger.pattern)) {
        const fire = this.trigger.fire;
        this.trigger = null;
        this.muted = true;
        fire();
      }
    });
    // A client gone: the upstream gets a clean end, so it still reads what was sent before.
    pair.client.once("close", () => upstream.end());
    upstream.on("data", (chunk: Buffer) => {
      if (!this.muted) pair.client.write(chunk);
    });
    pair.client.resume();
  }

  /** Set by muteAfter: server-to-client traffic is dropped (the server hears, the client never learns). */
  private muted = false;
  private trigger: { pattern: Buffer; fire: () => void } | null = null;

  /**
   * Resolves when a client sends `pattern` (e.g. a COMMIT): that chunk still reaches the server,
   * but from then on nothing the server sends reaches any client. For "the write committed, its
   * sender never learned". `restore()` lifts the mute.
   */
  muteAfter(pattern: string): Promise<void> {
    return new Promise((resolve) => {
      this.trigger = { pattern: Buffer.from(pattern), fire: resolve };
    });
  }

  /**
   * Cuts the link: existing connections are destroyed (reset), or for "stall" frozen in place
   * (data stops flowing both ways, nobody is told). New connections then follow the mode.
   */
  async cut(mode: Exclude<ProxyMode, "open"> = "refuse"): Promise<void> {
    this.mode = mode;
    for (const pair of [...this.pairs]) {
      if (mode === "stall") {
        pair.client.pause();
        pair.upstream?.pause();
      } else {
        pair.client.resetAndDestroy();
        pair.upstream?.destroy();
        this.pairs.delete(pair);
      }
    }
    if (mode === "refuse" && this.server) {
      const s = this.server;
      this.server = null;
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  /** Restores the link on the same port; connections frozen by a stall are destroyed (a stall that ends in a reset). */
  async restore(): Promise<void> {
    for (const pair of [...this.pairs]) {
      if (this.mode === "stall") {
        pair.client.resetAndDestroy();
        pair.upstream?.destroy();
        this.pairs.delete(pair);
      }
    }
    this.mode = "open";
    this.muted = false;
    this.trigger = null;
    if (!this.server) await this.listen();
  }

  async close(): Promise<void> {
    this.mode = "refuse";
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    this.pairs.clear();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
