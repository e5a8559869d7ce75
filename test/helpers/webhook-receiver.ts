// A real HTTP server standing in for an application's webhook receiver: records every request
// (raw body, headers) and answers what the test decides per request (a status, or never).
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Test } from "tap";
import { parseWebhook, type WebhookEvent } from "../../src/client/server/index.ts";
import { eventually } from "./probe.ts";

export interface Received {
  delivery: string;
  signature: string;
  raw: string;
  event: WebhookEvent;
  /** The status answered (0: never answered). */
  status: number;
}

export class WebhookReceiver {
  readonly requests: Received[] = [];
  /** Decides the answer; default 200. "hang" keeps the request open until the server closes. */
  answer: (event: WebhookEvent, attempt: number) => number | "hang" = () => 200;
  private readonly server: http.Server;
  private readonly hanging = new Set<http.ServerResponse>();

  constructor(private readonly secret: string) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        // Throws (and fails the test loudly) on a bad signature or shape.
        const event = parseWebhook(this.secret, raw, req.headers["x-chatroom-signature"]);
        const delivery = String(req.headers["x-chatroom-delivery"]);
        const attempt = this.requests.filter((r) => r.delivery === delivery).length + 1;
        const decision = this.answer(event, attempt);
        const rec: Received = { delivery, signature: String(req.headers["x-chatroom-signature"]), raw, event, status: decision === "hang" ? 0 : decision };
        this.requests.push(rec);
        if (decision === "hang") return void this.hanging.add(res);
        res.writeHead(decision).end();
      });
    });
  }

  async start(t: Test): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    t.teardown(() => this.stop());
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  /** Requests of a group, in arrival order. */
  of(group: string): Received[] {
    return this.requests.filter((r) => r.event.group === group);
  }

  /** Seqs of a group answered 2xx, in arrival order. */
  accepted(group: string): number[] {
    return this.of(group).filter((r) => r.status >= 200 && r.status < 300).map((r) => r.event.seq);
  }

  /** Waits until the group's accepted seqs cover 1..n. */
  async until(group: string, n: number, ms = 15_000): Promise<boolean> {
    return eventually(() => new Set(this.accepted(group)).size >= n, ms, 20);
  }
}
