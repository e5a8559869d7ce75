// One WebSocket as the gateway sees it: who it is, its quota, what it has in flight, and the
// Outlet its subscriptions send through. Every call into uWS goes through here and first checks
// the socket is still open: uWS throws ("Invalid access of closed uWS.WebSocket") on a closed
// socket, and a late callback (a replay page, a drain, an answer, a timer) must never crash the node.
//
// Closing with a code (4008, 4001, 4010, 1013) waits until the socket's queue has been written:
// uWS gives a socket only its ping timeout (4 to 16 s) after `end` to take everything queued
// before the close frame, then drops it with a bare FIN, so a slow client still reading its
// backlog saw 1006 instead of the code. Meanwhile the socket is out of every topic, gets no
// answers and its frames are ignored; after `endGraceMs` it is ended anyway.
import type { Payload } from "../chat/sequencer.ts";
import type { Session } from "../chat/identity.ts";
import type { Multiplex } from "../chat/multiplex.ts";
import type { Subscriber } from "../chat/subscriber.ts";
import type { Outlet } from "../chat/subscription.ts";
import type { SocketQuota } from "./limits.ts";
import type { WebSocket } from "../uws/uws.ts";

/** What uWS keeps per socket: uWS.js copies the upgrade's object, so it holds a reference. */
export interface SocketData {
  conn: Connection;
}

export class Connection implements Outlet {
  /**
   * Frames sent to one socket (answers, replays, errors: everything but group events), by every
   * Connection of the process: the slow-consumer checks rest only while this stands still.
   */
  static directSends = 0;
  private ws: WebSocket<SocketData> | null = null;
  private isOpen = false;
  /** A close waiting for the queue to drain. */
  private ending: { code: number; reason: string; timer: NodeJS.Timeout } | null = null;
  private expiry: NodeJS.Timeout | null = null;
  /** Set at open: the socket's subscriptions (one on /ws/chat/<group>/). */
  subscriber: Subscriber | null = null;
  /** Its turn in a paced drain (or a rebalance) has come: new frames are refused, and it closes with this once none is in flight. */
  private drainClose: { code: number; reason: string } | null = null;
  /** A `/ws/` socket (group ""): the groups it may subscribe to (the token's claim; null = any), and its Multiplex once open. */
  allowedGroups: readonly string[] | null = null;
  mux: Multiplex | null = null;
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
    /** The longest a close waits for the socket's queue to drain (the idle timeout). */
    private readonly endGraceMs: number,
    /** When its identity expires (ms since the epoch: a token's exp plus the tolerance); null: never. */
    readonly expiresAt: number | null = null,
    /** `?presence=1`: the group's join/leave events too. */
    readonly presence = false,
  ) {
    this.session = { group, user };
  }

  /** The session its frames are dispatched under (one object for every frame). */
  readonly session: Session;

  get draining(): boolean {
    return this.drainClose !== null;
  }

  /** Its turn to leave (drain or rebalance): closes now when no frame is in flight, else once the last is answered (`settled`). */
  drain(code: number, reason: string): void {
    this.drainClose = { code, reason };
    this.settled();
  }

  /** No frame of it is in flight any more: a drain waiting for that closes it now. */
  settled(): void {
    if (this.drainClose && this.pending === 0) this.end(this.drainClose.code, this.drainClose.reason);
  }

  /** Whether its identity has expired (then nothing it sends may act). */
  get expired(): boolean {
    return this.expiresAt !== null && Date.now() >= this.expiresAt;
  }

  /** False once the socket is closing: nothing more is sent to it or read from it. */
  get open(): boolean {
    return this.isOpen && this.ending === null;
  }

  /** uWS opened the socket; `onExpired` is called when its identity expires while it is open. */
  attach(ws: WebSocket<SocketData>, onExpired: () => void): void {
    this.ws = ws;
    this.isOpen = true;
    if (this.expiresAt !== null) this.armExpiry(onExpired);
  }

  /** uWS is closing the socket: from here on nothing touches it. */
  detach(): void {
    this.isOpen = false;
    this.ws = null;
    if (this.ending) clearTimeout(this.ending.timer);
    if (this.expiry) clearTimeout(this.expiry);
  }

  /** uWS wrote some of the queue: a pending close may go, or paused replays may go on. */
  drained(): void {
    if (this.ending) {
      if (this.ws!.getBufferedAmount() <= END_AT_BYTES) this.finishEnd();
    } else this.subscriber?.drained();
  }

  send(payload: Payload): void {
    if (!this.open) return;
    Connection.directSends++;
    this.ws!.send(payload, false);
  }

  buffered(): number {
    return this.isOpen ? this.ws!.getBufferedAmount() : 0;
  }

  cork(fn: () => void): void {
    if (this.open) this.ws!.cork(fn);
  }

  live(group: string, join: boolean): void {
    if (!this.open) return;
    if (join) this.ws!.subscribe(group);
    else this.ws!.unsubscribe(group);
  }

  /** Closes with `code` once what is queued has been written (at once when little is). */
  end(code: number, reason: string): void {
    if (!this.open) return;
    if (this.ws!.getBufferedAmount() <= END_AT_BYTES) return this.ws!.end(code, reason);
    for (const topic of this.ws!.getTopics()) this.ws!.unsubscribe(topic);
    this.ending = { code, reason, timer: setTimeout(() => this.finishEnd(), this.endGraceMs) };
    this.subscriber?.close();
  }

  /** Closes now, whatever is queued (shutdown). */
  endNow(code: number, reason: string): void {
    if (this.isOpen) this.ws!.end(code, reason);
  }

  private armExpiry(onExpired: () => void): void {
    // setTimeout takes at most 2^31-1 ms (24.8 days): a longer token re-arms.
    const wait = Math.min(Math.max(0, this.expiresAt! - Date.now()), 2 ** 31 - 1);
    this.expiry = setTimeout(() => {
      this.expiry = null;
      if (!this.isOpen) return;
      if (this.expired) onExpired();
      else this.armExpiry(onExpired);
    }, wait);
  }

  private finishEnd(): void {
    if (!this.isOpen || !this.ending) return;
    clearTimeout(this.ending.timer);
    this.ws!.end(this.ending.code, this.ending.reason);
  }
}

/** Queued bytes below which a close goes at once: the client takes them well within uWS's timeout. */
const END_AT_BYTES = 64 * 1024;
