// One WebSocket as the gateway sees it: who it is, its quota, what it has in flight, and the
// Outlet its subscriptions send through. Every call into uWS goes through here and first checks
// the socket is still open: uWS throws ("Invalid access of closed uWS.WebSocket") on a closed
// socket, and a late callback (a replay page, a drain, an answer, a timer) must never crash the node.
import type { Payload } from "../chat/sequencer.ts";
import type { Subscriber } from "../chat/subscriber.ts";
import type { Outlet } from "../chat/subscription.ts";
import type { SocketQuota } from "./limits.ts";
import type { WebSocket } from "./uws.ts";

/** What uWS keeps per socket: uWS.js copies the upgrade's object, so it holds a reference. */
export interface SocketData {
  conn: Connection;
}

export class Connection implements Outlet {
  private ws: WebSocket<SocketData> | null = null;
  private isOpen = false;
  /** Set at open: the socket's subscriptions (one on /ws/chat/<group>/). */
  subscriber: Subscriber | null = null;
  /** Frames of this socket handed to the dispatcher and not yet answered, and their bytes. */
  pending = 0;
  pendingBytes = 0;

  constructor(
    readonly id: string,
    /** The group of a /ws/chat/<group>/ socket. */
    readonly group: string,
    readonly user: string | null,
    /** `?since=`: replay from there before live events; null for live only. */
    readonly since: number | null,
    /** Its slot under the sockets-per-user limit and its frame rate buckets. */
    readonly quota: SocketQuota,
  ) {}

  get open(): boolean {
    return this.isOpen;
  }

  /** uWS opened the socket. */
  attach(ws: WebSocket<SocketData>): void {
    this.ws = ws;
    this.isOpen = true;
  }

  /** uWS is closing the socket: from here on nothing touches it. */
  detach(): void {
    this.isOpen = false;
    this.ws = null;
  }

  send(payload: Payload): void {
    if (this.isOpen) this.ws!.send(payload, false);
  }

  buffered(): number {
    return this.isOpen ? this.ws!.getBufferedAmount() : 0;
  }

  cork(fn: () => void): void {
    if (this.isOpen) this.ws!.cork(fn);
  }

  live(group: string, join: boolean): void {
    if (!this.isOpen) return;
    if (join) this.ws!.subscribe(group);
    else this.ws!.unsubscribe(group);
  }

  end(code: number, reason: string): void {
    if (this.isOpen) this.ws!.end(code, reason);
  }
}
