// The uWebSockets.js app: WebSocket upgrade (group rule, identity, subscription), frame hand-off
// to the dispatcher, local fan-out through native topics, and the HTTP routes. It stays thin:
// everything about what a frame means lives in src/chat.
import { randomUUID } from "node:crypto";
import type { Dispatcher } from "../chat/dispatch.ts";
import { errorFrame } from "../chat/events.ts";
import type { ChatService } from "../chat/service.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { CLOSE_SLOW_CONSUMER, type ErrorCode } from "../protocol/index.ts";
import { registerHttpRoutes, type HttpDeps } from "../http/routes.ts";
import { deferred, send } from "../http/respond.ts";
import type { Payload } from "../chat/sequencer.ts";
import type { IdentityProvider } from "./identity.ts";
import { withDeadline } from "../deadline.ts";
import { parseSince, replay } from "./resume.ts";
import { groupParam } from "./params.ts";
import { SlowConsumers } from "./backpressure.ts";
import { pacedClose } from "./drain.ts";
import { ConnectionLimits, requestIdOf, type LimitOptions, type SocketQuota } from "./limits.ts";
import { uws, type HttpRequest, type HttpResponse, type us_listen_socket, type us_socket_context_t, type WebSocket } from "./uws.ts";

export interface GatewayOptions {
  maxFrameBytes: number;
  maxPendingFrames: number;
  idleTimeoutSeconds: number;
  maxBackpressureBytes: number;
  /** An upper bound on the largest frame the node sends one socket (a full history page). */
  maxAnswerBytes: number;
  /** How long an upgrade may wait for the node to subscribe to the group's channel. */
  joinTimeoutMs: number;
  limits: LimitOptions;
}

export interface GatewayDeps extends Omit<HttpDeps, "service"> {
  service: ChatService;
  dispatcher: Dispatcher;
  identity: IdentityProvider;
  metrics: Metrics;
  log: HttpDeps["log"] & { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

interface SocketData {
  id: string;
  group: string;
  user: string | null;
  closed: boolean;
  /** Frames of this socket handed to the dispatcher and not yet answered. */
  pending: number;
  /** `?since=`: replay from there before live events; null for live only. */
  since: number | null;
  /** Live events held while the replay is sent (null when not resuming). */
  held: { payload: Payload; seq: number | null }[] | null;
  /** After the replay, when the client is ahead of this node: the seq to deliver before going live. */
  liveAt: number | null;
  /** Ends a resume: sends the held events the client lacks and joins the live topic. */
  goLive: (() => void) | null;
  /** Wakes a replay waiting for the send buffer to drain. */
  onDrain: (() => void) | null;
  /** Its slot under the sockets-per-user limit and its frame rate buckets. */
  quota: SocketQuota;
  /** Its turn in a paced drain has come: new frames are refused, and it closes once none is in flight. */
  draining: boolean;
}

/** Replays pause while a socket has more than this queued, so backpressure never drops an event. */
const REPLAY_BUFFER_BYTES = 1024 * 1024;

const CLOSE_GOING_AWAY = 1001;
/**
 * How long shutdown waits for close handshakes after ending the sockets (at most half the
 * in-flight budget). uWS reports a socket closed as soon as it sends its close frame, so there is
 * no event for "the peer answered"; 250 ms proved too short behind HAProxy on a loaded machine.
 */
const CLOSE_GRACE_MS = 1_000;

export class Gateway {
  readonly app = uws.App();
  private listenSocket: us_listen_socket | null = null;
  private readonly sockets = new Set<WebSocket<SocketData>>();
  /** Sockets of each group still receiving their replay. */
  private readonly resuming = new Map<string, Set<SocketData>>();
  private inflight = 0;
  private idle: (() => void) | null = null;
  private closing = false;
  private readonly limits: ConnectionLimits;
  private readonly slow: SlowConsumers<WebSocket<SocketData>>;

  constructor(
    private readonly deps: GatewayDeps,
    private readonly opts: GatewayOptions,
  ) {
    this.limits = new ConnectionLimits(opts.limits, deps.metrics);
    this.slow = new SlowConsumers(opts.maxBackpressureBytes, (ws) => this.slowConsumer(ws));
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
      upgrade: (res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t) => this.upgrade(res, req, ctx),
      open: (ws: WebSocket<SocketData>) => this.open(ws),
      message: (ws: WebSocket<SocketData>, data: ArrayBuffer, isBinary: boolean) => this.message(ws, data, isBinary),
      close: (ws: WebSocket<SocketData>, code: number, reason: ArrayBuffer) => this.close(ws, code, reason),
      drain: (ws: WebSocket<SocketData>) => ws.getUserData().onDrain?.(),
    };
    // The seed's routing has a trailing slash; clients without one are just as welcome.
    this.app.ws<SocketData>("/ws/chat/:group", behavior);
    this.app.ws<SocketData>("/ws/chat/:group/", behavior);
    registerHttpRoutes(this.app, deps);
  }

  /** Hands a group event (in seq order) to every local socket of the group: serialised once, fanned out natively. */
  deliver(group: string, payload: Payload, seq: number | null): void {
    this.app.publish(group, payload, false);
    this.slow.checkGroup(group);
    const resuming = this.resuming.get(group);
    if (!resuming) return;
    for (const d of [...resuming]) {
      d.held!.push({ payload, seq });
      if (d.liveAt !== null && seq !== null && seq >= d.liveAt) d.goLive!();
    }
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
    for (const ws of [...this.sockets]) {
      const d = ws.getUserData();
      if (d.user !== user || d.closed) continue;
      ws.end(code, reason);
      n++;
    }
    return n;
  }

  get connectionCount(): number {
    return this.sockets.size;
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
    await pacedClose(() => [...this.sockets].filter((ws) => !ws.getUserData().draining), spreadMs, (ws) => {
      const d = ws.getUserData();
      if (d.closed) return false;
      // A socket with a frame in flight refuses new ones and closes once that one is answered.
      d.draining = true;
      if (d.pending === 0) ws.end(CLOSE_GOING_AWAY, "server shutting down");
      return true;
    }, (closed, left) => this.deps.log.info({ closed, left }, "drain: sockets closed"));
    this.closing = true;
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, inflightTimeoutMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const closing = this.sockets.size > 0;
    for (const ws of [...this.sockets]) ws.end(CLOSE_GOING_AWAY, "server shutting down");
    // Let the close frames leave and the peers answer before the process may exit: exiting with
    // a client's unread frames in the kernel resets the connection, and a proxy in between then
    // drops the 1001 it had not forwarded yet (seen as 1006 behind HAProxy).
    if (closing) await new Promise((resolve) => setTimeout(resolve, Math.min(CLOSE_GRACE_MS, inflightTimeoutMs / 2)));
  }

  private upgrade(res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t): void {
    const key = req.getHeader("sec-websocket-key");
    const protocol = req.getHeader("sec-websocket-protocol");
    const extensions = req.getHeader("sec-websocket-extensions");
    const authorization = req.getHeader("authorization");
    const origin = req.getHeader("origin");
    const query = new URLSearchParams(req.getQuery() ?? "");
    const group = groupParam(req.getParameter(0) ?? "");
    const aborted = deferred(res);
    if (group === null) return send(res, 400, "invalid group name: 1 to 99 characters of A-Z a-z 0-9 - _ .");
    const since = parseSince(query.get("since"));
    if (since === undefined) return send(res, 400, "since must be an integer >= 0");
    if (this.closing) return send(res, 503, "server shutting down");
    if (!this.limits.originAllowed(origin)) return send(res, 403, "origin not allowed");
    void (async () => {
      const who = await this.deps.identity.identify({ authorization, query, group });
      if (!who.ok) return send(res, who.status, who.message, {}, aborted);
      // Limits are checked here, after identity and right before the join, in the same tick.
      const admitted = this.limits.admit(who.user, group, this.deps.service.memberships);
      if (!admitted.ok) return send(res, admitted.status, admitted.message, {}, aborted);
      const quota = admitted.quota;
      try {
        await withDeadline(this.deps.service.join(group), this.opts.joinTimeoutMs, () => new Error("subscribe timed out"));
      } catch (err) {
        this.deps.service.leave(group);
        this.limits.release(quota);
        this.deps.log.warn({ err, group }, "could not subscribe to group");
        return send(res, 503, "event bus unavailable", {}, aborted);
      }
      if (aborted() || this.closing) {
        this.deps.service.leave(group);
        this.limits.release(quota);
        return send(res, 503, "server shutting down", {}, aborted);
      }
      const data: SocketData = { id: randomUUID(), group, user: who.user, closed: false, draining: false, pending: 0, since, held: null, liveAt: null, goLive: null, onDrain: null, quota };
      res.cork(() => res.upgrade(data, key, protocol, extensions, ctx));
    })().catch((err) => {
      this.deps.log.error({ err, group }, "upgrade failed");
      send(res, 500, "internal error", {}, aborted);
    });
  }

  private open(ws: WebSocket<SocketData>): void {
    const d = ws.getUserData();
    if (d.since === null) ws.subscribe(d.group);
    else this.resume(ws, d, d.since);
    this.sockets.add(ws);
    this.deps.reads.touch(d.group, d.user); // subscribing makes the user a member
    this.slow.watch(d.group, ws);
    if (d.user !== null) this.deps.service.presenceOpen(d.group, d.user);
    this.deps.metrics.connections.set(this.sockets.size);
    this.deps.metrics.groups.set(this.deps.service.memberships.size);
    this.deps.log.info({ conn: d.id, group: d.group, user: d.user }, "connection open");
  }

  private message(ws: WebSocket<SocketData>, data: ArrayBuffer, isBinary: boolean): void {
    const d = ws.getUserData();
    const limited = this.limits.frame(d.quota);
    if (limited) {
      const what = limited === "socket_rate" ? "this connection" : "this user";
      return this.refuse(ws, "rate_limited", `too many frames from ${what}; slow down`, isBinary ? undefined : requestIdOf(data));
    }
    if (isBinary) return this.refuse(ws, "bad_request", "binary frames are not accepted; send JSON text");
    if (this.closing || d.draining) return this.refuse(ws, "unavailable", "server shutting down; reconnect", requestIdOf(data));
    if (d.pending >= this.opts.maxPendingFrames) {
      this.limits.hit("pending_frames");
      return this.refuse(ws, "rate_limited", `more than ${this.opts.maxPendingFrames} frames awaiting an answer`, requestIdOf(data));
    }
    // Copy now: uWS reuses the buffer once this callback returns.
    const text = Buffer.from(data).toString("utf8");
    d.pending++;
    this.inflight++;
    // Handed over at once, not after the previous frame's answer: the dispatcher reaches the
    // store synchronously, and the store commits a group's writes in the order they arrive, so a
    // sender's messages keep their order while several are in flight.
    void this.deps.dispatcher.dispatch({ group: d.group, user: d.user }, text).then((reply) => {
      if (reply !== null && !d.closed) {
        ws.cork(() => ws.send(reply));
        this.slow.check(ws);
      }
      d.pending--;
      // Its turn in a paced drain came while this frame was in flight: closed once answered.
      if (d.draining && d.pending === 0 && !d.closed) ws.end(CLOSE_GOING_AWAY, "server shutting down");
      if (--this.inflight === 0) this.idle?.();
    });
  }

  /** Answers a frame the gateway turns away before it reaches the dispatcher. */
  private refuse(ws: WebSocket<SocketData>, code: ErrorCode, message: string, requestId?: string): void {
    this.deps.metrics.errors.inc({ code });
    // A per-group socket's every frame names its group.
    ws.send(errorFrame(code, message, requestId, ws.getUserData().group));
    this.slow.check(ws);
  }

  /** A live socket that cannot keep up: closed with a clear code before uWS would skip its events. */
  private slowConsumer(ws: WebSocket<SocketData>): void {
    const d = ws.getUserData();
    if (d.closed || d.held !== null) return; // a resume's replay paces itself by the drain
    this.limits.hit("slow_consumer");
    this.deps.log.warn({ conn: d.id, group: d.group, user: d.user, buffered: ws.getBufferedAmount() }, "slow consumer closed");
    ws.end(CLOSE_SLOW_CONSUMER, "slow consumer: too much data waiting to be sent");
  }

  private resume(ws: WebSocket<SocketData>, d: SocketData, since: number): void {
    d.held = [];
    let group = this.resuming.get(d.group);
    if (!group) this.resuming.set(d.group, (group = new Set()));
    group.add(d);
    const sink = {
      send: (payload: Payload) => void ws.send(payload, false),
      isClosed: () => d.closed,
      writable: () =>
        d.closed || ws.getBufferedAmount() < REPLAY_BUFFER_BYTES
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              d.onDrain = () => {
                if (ws.getBufferedAmount() < REPLAY_BUFFER_BYTES) {
                  d.onDrain = null;
                  resolve();
                }
              };
            }),
    };
    replay(this.deps.service, sink, d.group, since).then(
      (upTo) => {
        if (d.closed) return this.stopResuming(d);
        d.goLive = () => {
          this.stopResuming(d);
          const held = d.held!;
          d.held = null;
          d.liveAt = null;
          ws.cork(() => {
            for (const h of held) if (h.seq === null || h.seq > upTo) ws.send(h.payload, false);
            ws.subscribe(d.group);
          });
        };
        // A client that came from a node further ahead waits until this node has caught up to
        // it; going live earlier would hand it events it already has.
        if (this.deps.service.delivered(d.group) >= upTo) d.goLive();
        else d.liveAt = upTo;
      },
      (err) => {
        this.stopResuming(d);
        if (d.closed) return;
        this.deps.log.warn({ err, conn: d.id, group: d.group }, "replay failed");
        // A client that asked to resume must not silently get a gap: let it reconnect and retry.
        ws.end(1013, "replay unavailable, retry");
      },
    );
  }

  private stopResuming(d: SocketData): void {
    const group = this.resuming.get(d.group);
    group?.delete(d);
    if (group?.size === 0) this.resuming.delete(d.group);
  }

  private close(ws: WebSocket<SocketData>, code = 0, reason = new ArrayBuffer(0)): void {
    const d = ws.getUserData();
    d.closed = true;
    d.onDrain?.();
    this.sockets.delete(ws);
    this.slow.unwatch(d.group, ws);
    this.limits.release(d.quota);
    this.limits.closed(code, reason);
    this.deps.service.leave(d.group);
    if (d.user !== null) this.deps.service.presenceClose(d.group, d.user);
    this.deps.metrics.connections.set(this.sockets.size);
    this.deps.metrics.groups.set(this.deps.service.memberships.size);
    this.deps.log.info({ conn: d.id, group: d.group, user: d.user }, "connection closed");
  }
}
