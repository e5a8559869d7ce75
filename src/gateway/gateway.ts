// The uWebSockets.js app: it moves bytes, checks identity and applies limits, nothing more. The
// upgrade (upgrade.ts) admits a socket; each socket is a Connection (connection.ts) whose
// subscriptions (src/chat/subscriber.ts) own everything about delivery: replay, held events,
// going live. Frames go through the frame loop (frames.ts) to the dispatcher; group events fan
// out through uWS's native topics, serialised once.
import { ByteBudget } from "../chat/budget.ts";
import type { Dispatcher } from "../chat/dispatch.ts";
import type { Payload } from "../chat/sequencer.ts";
import { Subscriber } from "../chat/subscriber.ts";
import type { Subscriptions } from "../chat/subscriptions.ts";
import { presenceTopic } from "../chat/subscription.ts";
import type { ChatService } from "../chat/service.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { CLOSE_SLOW_CONSUMER, CLOSE_TOKEN_EXPIRED } from "../protocol/index.ts";
import type { IdentityProvider } from "../identity/identity.ts";
import { CHECK_EVERY_MS, SlowConsumers } from "./backpressure.ts";
import { pacedClose } from "./drain.ts";
import { Connection, type SocketData } from "./connection.ts";
import { FrameLoop, type FrameLimits } from "./frames.ts";
import { ConnectionLimits, type LimitOptions } from "./limits.ts";
import type { UploadBudget } from "./upload-budget.ts";
import { upgradeChat } from "./upgrade.ts";
import { upgradeMux } from "./upgrade-mux.ts";
import { SocketMultiplex } from "./multiplex.ts";
import { uws, type HttpRequest, type HttpResponse, type us_listen_socket, type us_socket_context_t, type WebSocket } from "../uws/uws.ts";

export interface GatewayOptions extends FrameLimits {
  /** Groups one `/ws/` socket may follow (MAX_SUBSCRIPTIONS_PER_SOCKET). */
  maxSubscriptionsPerSocket: number;
  maxFrameBytes: number;
  idleTimeoutSeconds: number;
  maxBackpressureBytes: number;
  /** An upper bound on the largest frame the node sends one socket (a full history page). */
  maxAnswerBytes: number;
  limits: LimitOptions;
}

export interface GatewayDeps {
  service: ChatService;
  dispatcher: Dispatcher;
  subscriptions: Subscriptions;
  /** The node-wide byte budget: frames awaiting an answer and events held for resumes. */
  budget: ByteBudget;
  /** The node-wide upload byte rate (MAX_UPLOAD_BYTES_PER_SECOND), shared with the server API. */
  uploads: UploadBudget;
  identity: IdentityProvider;
  metrics: Metrics;
  log: { error(obj: object, msg: string): void; info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

const CLOSE_GOING_AWAY = 1001;
/**
 * How long shutdown lets the last close handshake run before the process may exit, counted from
 * the last socket closed (at most half the in-flight budget). uWS reports a socket closed as soon
 * as it sends its close frame, so there is no event for "the peer answered". A peer still reading
 * its backlog keeps sending; once the process is gone its kernel answers that with a reset, and
 * HAProxy then drops the 1001 it had not forwarded yet (1006 at the client). 250 ms proved too
 * short behind HAProxy on a loaded machine, and so did waiting only when sockets were left after
 * the drain: the last one often closes during it, once its final frame is answered.
 */
const CLOSE_GRACE_MS = 2_000;

export class Gateway {
  readonly app = uws.App();
  private listenSocket: us_listen_socket | null = null;
  private readonly sockets = new Set<Connection>();
  private closing = false;
  private readonly limits: ConnectionLimits;
  private readonly slow: SlowConsumers<Connection>;
  private readonly frames: FrameLoop;
  /** When a socket last closed (shutdown's grace counts from it). */
  private lastClosedAt = 0;

  constructor(
    private readonly deps: GatewayDeps,
    private readonly opts: GatewayOptions,
  ) {
    this.limits = new ConnectionLimits(opts.limits, deps.metrics);
    this.slow = new SlowConsumers(opts.maxBackpressureBytes, (conn) => this.slowConsumer(conn), CHECK_EVERY_MS, () => Connection.directSends);
    this.frames = new FrameLoop(deps.dispatcher, this.limits, deps.budget, deps.uploads, this.slow, deps.metrics, opts, (conn) => this.expired(conn));
    // A socket is watched for its buffer in every group it follows, resuming or live.
    deps.subscriptions.on("open", (sub) => this.slow.watch(sub.group, sub.outlet as Connection));
    deps.subscriptions.on("close", (sub) => this.slow.unwatch(sub.group, sub.outlet as Connection));
    const upgradeDeps = { ...deps, limits: this.limits, groups: deps.service.memberships, closing: () => this.closing, endGraceMs: opts.idleTimeoutSeconds * 1000, corkElsewhere: (fn: () => void) => this.corkElsewhere(fn) };
    const behavior = {
      maxPayloadLength: opts.maxFrameBytes,
      idleTimeout: opts.idleTimeoutSeconds,
      sendPingsAutomatically: true,
      // The backstop (see backpressure.ts): past it uWS closes rather than skips. It leaves room
      // above our limit for the largest answer, because uWS drops any send, the 4008 close frame
      // included, once the buffer is over it: one big answer to a paused client used to push the
      // buffer past a backstop of 2 x our limit, and the client saw 1006 instead of 4008.
      maxBackpressure: opts.maxBackpressureBytes * 2 + opts.maxAnswerBytes,
      closeOnBackpressureLimit: 1,
      compression: uws.DISABLED,
      upgrade: (res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t) => upgradeChat(upgradeDeps, res, req, ctx),
      open: (ws: WebSocket<SocketData>) => this.open(ws.getUserData().conn, ws),
      message: (ws: WebSocket<SocketData>, data: ArrayBuffer, isBinary: boolean) => this.frames.message(ws.getUserData().conn, data, isBinary),
      close: (ws: WebSocket<SocketData>, code: number, reason: ArrayBuffer) => this.close(ws.getUserData().conn, code, reason),
      drain: (ws: WebSocket<SocketData>) => ws.getUserData().conn.drained(),
    };
    // The seed's routing has a trailing slash; clients without one are just as welcome.
    this.app.ws<SocketData>("/ws/chat/:group", behavior);
    this.app.ws<SocketData>("/ws/chat/:group/", behavior);
    // One connection for many groups: the same socket handling, its own upgrade.
    const muxBehavior = { ...behavior, upgrade: (res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t) => upgradeMux(upgradeDeps, res, req, ctx) };
    this.app.ws<SocketData>("/ws", muxBehavior);
    this.app.ws<SocketData>("/ws/", muxBehavior);
  }

  /** Hands a group event to every live local socket of the group: serialised once, fanned out natively. */
  publish(group: string, payload: Payload): void {
    this.fanOut(group, group, payload);
  }

  /** A join/leave frame of the group, to its local sockets that asked for them (`presenceTopic`). */
  publishPresence(group: string, payload: Payload): void {
    this.fanOut(presenceTopic(group), group, payload);
  }

  /** Publishes to `topic`'s sockets; the slow-consumer check counts the bytes against the group's. */
  private fanOut(topic: string, group: string, payload: Payload): void {
    this.app.publish(topic, payload, false);
    // A string's UTF-8 bytes are at most three per UTF-16 unit.
    this.slow.published(group, typeof payload === "string" ? payload.length * 3 : payload.byteLength);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (socket) => {
        if (!socket) return reject(new Error(`cannot listen on ${host}:${port}`));
        this.listenSocket = socket;
        resolve(uws.us_socket_local_port(socket as never));
      });
    });
  }

  /** Closes every socket of `user` on this node with `code` (server API disconnect); returns how many. */
  disconnectUser(user: string, code: number, reason: string): number {
    let n = 0;
    for (const conn of [...this.sockets]) {
      if (conn.user !== user || !conn.open) continue;
      conn.end(code, reason);
      n++;
    }
    return n;
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  /**
   * Rebalancing: closes up to `n` of the oldest open sockets with `code` (4012), each once no
   * frame of it is in flight (new frames are refused meanwhile); returns how many it took.
   */
  shed(n: number, code: number, reason: string): number {
    let taken = 0;
    for (const conn of this.sockets) {
      if (taken >= n) break;
      if (!conn.open || conn.draining) continue;
      conn.drain(code, reason);
      taken++;
    }
    return taken;
  }

  /**
   * Shutdown: stop listening; over `spreadMs`, close the sockets with 1001 at an even rate (one
   * with a frame in flight refuses new frames and closes once it is answered; the sockets whose
   * turn has not come are served meanwhile); then refuse new frames, let frames already being
   * handled finish (their acks still go out), and close every socket left with 1001.
   */
  async shutdown(inflightTimeoutMs: number, spreadMs = 0): Promise<void> {
    if (this.listenSocket) uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    await pacedClose(
      () => [...this.sockets].filter((conn) => !conn.draining),
      spreadMs,
      (conn) => {
        if (!conn.open) return false;
        conn.drain(CLOSE_GOING_AWAY, "server shutting down");
        return true;
      },
      (closed, left) => this.deps.log.info({ closed, left }, "drain: sockets closed"),
    );
    this.closing = true;
    await this.frames.stop(inflightTimeoutMs);
    for (const conn of [...this.sockets]) conn.endNow(CLOSE_GOING_AWAY, "server shutting down");
    // Let the last close frames leave and the peers answer before the process may exit (see CLOSE_GRACE_MS).
    const grace = Math.min(this.lastClosedAt + CLOSE_GRACE_MS - Date.now(), inflightTimeoutMs / 2);
    if (grace > 0) await new Promise((resolve) => setTimeout(resolve, grace));
  }

  private open(conn: Connection, ws: WebSocket<SocketData>): void {
    conn.attach(ws, () => this.expired(conn));
    this.sockets.add(conn);
    // The upgrade took the group's membership; the subscription owns it from here on.
    conn.subscriber = new Subscriber(this.deps.subscriptions, conn, conn.user);
    if (conn.group === "") {
      // A /ws/ socket follows what its subscribe frames ask for.
      conn.mux = new SocketMultiplex(conn, conn.allowedGroups, {
        subscriptions: this.deps.subscriptions,
        groups: this.deps.service.memberships,
        maxGroupsPerNode: this.opts.limits.maxGroupsPerNode,
        maxSubscriptions: this.opts.maxSubscriptionsPerSocket,
        lastSeq: (group) => this.deps.service.lastSeq(group),
      });
    } else conn.subscriber.subscribe(conn.group, conn.since, conn.presence);
    this.deps.metrics.connections.set(this.sockets.size);
    this.deps.metrics.groups.set(this.deps.service.memberships.size);
    this.deps.log.info({ conn: conn.id, group: conn.group, user: conn.user }, "connection open");
  }

  /** Runs `fn` inside the cork of an open socket (see uws/late-upgrade.ts); false when none is open. */
  private corkElsewhere(fn: () => void): boolean {
    for (const conn of this.sockets) {
      if (conn.open) {
        conn.cork(fn);
        return true;
      }
    }
    return false;
  }

  /** Its token expired while it was open: closed with 4001; it reconnects with a fresh token and resumes with since. */
  private expired(conn: Connection): void {
    if (!conn.open) return;
    this.deps.metrics.tokenExpiries.inc();
    this.deps.log.info({ conn: conn.id, group: conn.group, user: conn.user }, "token expired; socket closed");
    conn.end(CLOSE_TOKEN_EXPIRED, "token expired");
  }

  /** A socket that cannot keep up (live or resuming): closed with a clear code before uWS would skip its events. */
  private slowConsumer(conn: Connection): void {
    if (!conn.open) return; // already closing
    this.limits.hit("slow_consumer");
    this.deps.log.warn({ conn: conn.id, group: conn.group, user: conn.user, buffered: conn.buffered() }, "slow consumer closed");
    conn.end(CLOSE_SLOW_CONSUMER, "slow consumer: too much data waiting to be sent");
  }

  private close(conn: Connection, code = 0, reason = new ArrayBuffer(0)): void {
    this.lastClosedAt = Date.now();
    const why = { code, reason: Buffer.from(reason).toString("utf8").slice(0, 123) };
    conn.detach();
    this.frames.closed(conn); // frames still waiting for their upload turn are dropped
    conn.subscriber?.close();
    this.sockets.delete(conn);
    this.limits.release(conn.quota);
    this.limits.closed(code, reason);
    this.deps.metrics.connections.set(this.sockets.size);
    this.deps.metrics.groups.set(this.deps.service.memberships.size);
    // The code and reason uWS reported (ours on a close we sent; 1006 when the socket went without one).
    this.deps.log.info({ conn: conn.id, group: conn.group, user: conn.user, ...why }, "connection closed");
  }
}
