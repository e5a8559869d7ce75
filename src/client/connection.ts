// One connection for all of a user's conversations: a `/ws/` socket that follows many groups.
// Each followed group is a GroupView (group-view.ts) that keeps its own last seq; after a drop the
// connection reconnects (jittered backoff) and subscribes every group again from its own seq, so
// each resumes with no gap and no repeat. One outbox holds every operation not yet answered, of
// any group: it is resent after a reconnect with the same request_id, so a create is stored once.
import * as v from "valibot";
import { ClientFrames, ServerEvent, type AckEvent, type GroupsEvent, type Operation } from "../protocol/index.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import type { WebSocketConstructor, WebSocketLike } from "./chat-client.ts";
import { Emitter } from "./emitter.ts";
import { ChatRequestError } from "./errors.ts";
import { GroupView, type ViewConnection } from "./group-view.ts";

export interface ChatConnectionOptions {
  /** The server's base URL (`http://host:8000`); defaults to the page's origin. */
  url?: string;
  /** Open dev mode: who this is. */
  user?: string;
  /** JWT mode: the token, or a function returning a fresh one before each attempt. */
  token?: string | (() => string | Promise<string>);
  WebSocket?: WebSocketConstructor;
  reconnect?: BackoffOptions;
  /** How long an operation may wait for its answer once sent (default 10 s). */
  timeoutMs?: number;
}

export type MuxState = "connecting" | "live" | "reconnecting" | "closed";

export interface ChatConnectionEvents {
  state: (state: MuxState) => void;
  /** An error frame that answers no operation, or a frame outside the protocol. */
  error: (error: ChatRequestError) => void;
}

type Answer = AckEvent | GroupsEvent | { operation: "history" };

interface Pending {
  frame: string;
  /** The group it names (null: `groups`); sent only while that group is subscribed on this socket. */
  group: string | null;
  resolve: (a: Answer) => void;
  reject: (e: ChatRequestError) => void;
  timer?: ReturnType<typeof setTimeout>;
  /** Internal subscribe frames are not resent: every reconnect subscribes afresh. */
  subscribe?: GroupView;
}

const OPEN = 1;

/** `ws(s)://host[/prefix]/ws/?…` from a base URL. */
export function muxUrl(base: string, params: URLSearchParams): string {
  const url = new URL(base);
  url.protocol = url.protocol === "https:" ? "wss:" : url.protocol === "http:" ? "ws:" : url.protocol;
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/`;
  url.search = params.toString();
  url.hash = "";
  return url.toString();
}

export class ChatConnection extends Emitter<ChatConnectionEvents> implements ViewConnection {
  private readonly views = new Map<string, GroupView>();
  private readonly pending = new Map<string, Pending>();
  private ws: WebSocketLike | null = null;
  private current: MuxState = "connecting";
  private attempt = 0;
  private counter = 0;
  private readonly idPrefix = Math.random().toString(36).slice(2, 8);
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly WS: WebSocketConstructor;
  private readonly backoff: Required<BackoffOptions>;

  constructor(private readonly options: ChatConnectionOptions) {
    super();
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("no WebSocket implementation: pass options.WebSocket");
    this.WS = WS;
    this.backoff = { baseMs: 500, maxMs: 10_000, factor: 2, ...options.reconnect };
    void this.open();
  }

  get state(): MuxState {
    return this.current;
  }

  /** Who this connection is, when known (the `user` option). */
  get user(): string | undefined {
    return this.options.user;
  }

  /** The view of a followed group, if it is followed. */
  view(group: string): GroupView | undefined {
    return this.views.get(group);
  }

  /** Follows a group (from `since`, a seq stored earlier, when given); resolves once subscribed. */
  async subscribe(group: string, opts: { since?: number } = {}): Promise<GroupView> {
    let view = this.views.get(group);
    if (!view) {
      view = new GroupView(group, this, opts.since ?? null);
      this.views.set(group, view);
      if (this.ws?.readyState === OPEN && this.current === "live") this.sendSubscribe(view);
    }
    await view.subscribed;
    return view;
  }

  /** Stops following a group. */
  async unsubscribe(group: string): Promise<void> {
    const view = this.views.get(group);
    if (!view) return;
    this.views.delete(group);
    view.closed();
    await this.request(group, "unsubscribe", {}).catch(() => {});
  }

  /** The user's conversation list (most recent activity first), as the server answers it. */
  async conversations(opts: { before?: string; limit?: number } = {}): Promise<GroupsEvent> {
    return (await this.request(null, "groups", opts)) as GroupsEvent;
  }

  /** Sends one frame of `group` (null: `groups`) and resolves with its answer; kept in the outbox until answered. */
  request(group: string | null, op: Operation, fields: object): Promise<Answer> {
    if (this.current === "closed") return Promise.reject(new ChatRequestError("closed", "the connection was closed"));
    const parsed = v.safeParse(ClientFrames[op] as v.GenericSchema, fields);
    if (!parsed.success) return Promise.reject(new ChatRequestError("bad_request", `${op}: ${parsed.issues[0].message}`));
    const requestId = `${this.idPrefix}-${++this.counter}`;
    const frame = JSON.stringify({ ...(parsed.output as object), operation: op, ...(group === null ? {} : { group }), request_id: requestId });
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(requestId, { frame, group, resolve, reject });
      if (this.sendable(group)) this.transmit(requestId);
    });
  }

  /** Re-follows a group from its own last seq (a view that saw a gap asks for this). */
  resync(view: GroupView): void {
    if (this.current !== "live" || this.views.get(view.group) !== view) return;
    this.ws?.send(JSON.stringify({ operation: "unsubscribe", group: view.group }));
    this.sendSubscribe(view);
  }

  /** GET on the server with this connection's identity (`?user=`, or the token as Bearer). */
  async fetchJson(path: string): Promise<unknown> {
    const url = new URL(path, this.options.url ?? globalThis.location.origin);
    if (this.options.user !== undefined) url.searchParams.set("user", this.options.user);
    const { token } = this.options;
    const t = token === undefined ? undefined : typeof token === "function" ? await token() : token;
    const res = await fetch(url, { headers: t ? { authorization: `Bearer ${t}` } : {} });
    if (!res.ok) throw new Error(`HTTP ${res.status} for ${url.pathname}`);
    return res.json();
  }

  close(): void {
    if (this.current === "closed") return;
    this.setState("closed");
    clearTimeout(this.retryTimer);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ChatRequestError("closed", "the connection was closed"));
      this.pending.delete(id);
    }
    this.ws?.close(1000, "bye");
    this.ws = null;
  }

  // ---- the socket ------------------------------------------------------------------------

  private setState(state: MuxState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", state);
  }

  private async open(): Promise<void> {
    const params = new URLSearchParams();
    if (this.options.user !== undefined) params.set("user", this.options.user);
    try {
      const { token } = this.options;
      if (token !== undefined) params.set("token", typeof token === "function" ? await token() : token);
    } catch (err) {
      this.emit("error", new ChatRequestError("internal", `cannot get a token: ${(err as Error).message}`));
      return this.retry();
    }
    if (this.current === "closed") return;
    const base = this.options.url ?? globalThis.location.origin;
    const ws = new this.WS(muxUrl(base, params));
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.setState("live");
      // Every group from its own seq; each group's unanswered operations go once it is subscribed.
      for (const view of this.views.values()) this.sendSubscribe(view);
      for (const [id, p] of this.pending) if (!p.subscribe && this.sendable(p.group)) this.transmit(id);
    };
    ws.onmessage = (ev: { data: unknown }) => this.received(ws, String(ev.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const p of this.pending.values()) clearTimeout(p.timer);
      for (const [id, p] of this.pending) if (p.subscribe) this.pending.delete(id);
      for (const view of this.views.values()) {
        view.onSocket = false;
        view.dropped();
      }
      this.retry();
    };
    ws.onerror = () => {};
  }

  private retry(): void {
    if (this.current === "closed") return;
    this.setState("reconnecting");
    this.retryTimer = setTimeout(() => void this.open(), backoffDelay(this.attempt++, this.backoff));
  }

  private sendSubscribe(view: GroupView): void {
    const requestId = `${this.idPrefix}-s${++this.counter}`;
    const since = view.lastSeq;
    const frame = JSON.stringify({ operation: "subscribe", group: view.group, ...(since === null ? {} : { since }), request_id: requestId });
    view.onSocket = false;
    this.pending.set(requestId, {
      frame,
      group: view.group,
      subscribe: view,
      resolve: (a) => {
        view.onSocket = true;
        view.subscribeAnswered((a as AckEvent).seq ?? 0, since !== null);
        // The group's operations waiting for this socket, with their original request_ids.
        for (const [id, p] of this.pending) if (!p.subscribe && p.group === view.group) this.transmit(id);
      },
      reject: (e) => view.subscribeFailed(e),
    });
    this.transmit(requestId);
  }

  /** Whether a frame naming `group` can go now: `groups` and unfollowed groups (unsubscribe, leave) at once, a followed group once subscribed. */
  private sendable(group: string | null): boolean {
    if (this.current !== "live") return false;
    const view = group === null ? undefined : this.views.get(group);
    return view === undefined || view.onSocket;
  }

  private transmit(requestId: string): void {
    const p = this.pending.get(requestId);
    if (!p || this.ws?.readyState !== OPEN) return;
    this.ws.send(p.frame);
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      if (!this.pending.delete(requestId)) return;
      p.reject(new ChatRequestError("timeout", `no answer within ${this.options.timeoutMs ?? 10_000} ms`));
    }, this.options.timeoutMs ?? 10_000);
  }

  private received(ws: WebSocketLike, text: string): void {
    if (ws !== this.ws) return;
    const parsed = v.safeParse(ServerEvent, JSON.parse(text));
    if (!parsed.success) {
      this.emit("error", new ChatRequestError("bad_request", `the server sent a frame outside the protocol: ${text.slice(0, 200)}`));
      return;
    }
    const f = parsed.output;
    if (f.operation === "ack" || f.operation === "error" || f.operation === "history" || f.operation === "groups") {
      const p = f.request_id === undefined ? undefined : this.pending.get(f.request_id);
      if (p) {
        this.pending.delete(f.request_id!);
        clearTimeout(p.timer);
        if (f.operation === "error") {
          if ((f.code === "unavailable" || f.code === "rate_limited") && !p.subscribe) {
            // Same request_id, a little later: a retried create is still stored once.
            this.pending.set(f.request_id!, p);
            setTimeout(() => this.transmit(f.request_id!), backoffDelay(0, this.backoff));
            return;
          }
          return p.reject(new ChatRequestError(f.code, f.message, f.request_id));
        }
        return p.resolve(f as Answer);
      }
      if (f.operation === "error") {
        const view = f.group === undefined ? undefined : this.views.get(f.group);
        if (view) return view.receive(f);
        this.emit("error", new ChatRequestError(f.code, f.message));
      }
      return;
    }
    const group = (f as { group?: string }).group;
    const view = group === undefined ? undefined : this.views.get(group);
    view?.receive(f);
  }
}
