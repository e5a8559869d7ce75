// One group as seen through a multiplexed ChatConnection: its messages (Timeline), its members'
// read markers (ReadMarkers) and its own last seq. Stored events apply once and in seq order: a
// repeat is dropped, a gap makes the connection subscribe the group again from this view's seq.
import type { AckEvent, GroupsEvent, HistoryEvent, MemberView, MessageView, Operation, ReadEvent, ServerEvent, TypingEvent } from "../protocol/index.ts";
import { Emitter } from "./emitter.ts";
import { ChatRequestError } from "./errors.ts";
import { ReadMarkers } from "./read-markers.ts";
import { Timeline } from "./timeline.ts";

export type GroupViewState = "subscribing" | "syncing" | "live" | "offline" | "closed";

/** What a view needs from its connection. */
export interface ViewConnection {
  readonly user: string | undefined;
  request(group: string | null, op: Operation, fields: object): Promise<AckEvent | GroupsEvent | { operation: "history" }>;
  resync(view: GroupView): void;
  fetchJson(path: string): Promise<unknown>;
}

export interface GroupViewEvents {
  state: (state: GroupViewState) => void;
  /** `messages`, markers or the unread count changed. */
  change: () => void;
  read: (event: ReadEvent) => void;
  typing: (event: TypingEvent) => void;
  error: (error: ChatRequestError) => void;
}

export class GroupView extends Emitter<GroupViewEvents> {
  private readonly timeline = new Timeline();
  private readonly markers = new ReadMarkers();
  private seq: number | null;
  private current: GroupViewState = "subscribing";
  /** Subscribed on the connection's current socket (its operations may be sent). */
  onSocket = false;
  private settle!: { resolve: () => void; reject: (e: ChatRequestError) => void };
  /** Resolves once the group is first followed. */
  readonly subscribed: Promise<void>;

  constructor(
    readonly group: string,
    private readonly conn: ViewConnection,
    since: number | null,
  ) {
    super();
    this.seq = since;
    this.subscribed = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.subscribed.catch(() => {});
  }

  get state(): GroupViewState {
    return this.current;
  }

  /** The seq of the last stored event applied; store it to resume later with `since`. */
  get lastSeq(): number | null {
    return this.seq;
  }

  get messages(): readonly MessageView[] {
    return this.timeline.messages;
  }

  /** Loaded messages by others after this user's marker, not deleted. */
  get unread(): number {
    return this.conn.user === undefined ? 0 : this.markers.unread(this.conn.user, this.timeline.messages);
  }

  readMarker(user = this.conn.user): number {
    return user === undefined ? 0 : this.markers.of(user);
  }

  /** Members other than the author whose read marker reached the message. */
  readBy(messageId: string): string[] {
    const m = this.timeline.message(messageId);
    return m ? this.markers.seenBy(m) : [];
  }

  send(body: string): Promise<AckEvent> {
    return this.ask("create", { type: "text", body });
  }

  reply(messageId: string, body: string): Promise<AckEvent> {
    return this.ask("reply", { message_id: messageId, type: "text", body });
  }

  edit(messageId: string, body: string): Promise<AckEvent> {
    return this.ask("update", { message_id: messageId, body });
  }

  delete(messageId: string): Promise<AckEvent> {
    return this.ask("delete", { message_id: messageId });
  }

  seen(messageId: string): Promise<AckEvent> {
    return this.ask("seen", { message_id: messageId });
  }

  /** Moves this user's marker forward to `seq` (default: the last event applied). */
  async read(seq = this.seq ?? 0): Promise<AckEvent> {
    const ack = await this.ask("read", { seq });
    if (this.conn.user !== undefined && ack.read_seq !== undefined && this.markers.set(this.conn.user, ack.read_seq)) this.emit("change");
    return ack;
  }

  /** Loads the newest page of messages into `messages`. */
  async loadLatest(limit = 50): Promise<void> {
    const asked = this.timeline.version;
    const page = (await this.conn.request(this.group, "history", { limit })) as HistoryEvent;
    this.timeline.latest(page.messages, page.has_more, asked);
    this.emit("change");
  }

  /** Reads every member's marker over HTTP (for "seen by" after a reload). */
  async loadMembers(): Promise<void> {
    let before: string | undefined;
    for (let page = 0; page < 100; page++) {
      const q = new URLSearchParams({ limit: "100", ...(before === undefined ? {} : { before }) });
      const body = (await this.conn.fetchJson(`/api/groups/${encodeURIComponent(this.group)}/members?${q}`)) as { members: MemberView[]; has_more: boolean };
      this.markers.load(body.members);
      this.emit("change");
      if (!body.has_more || body.members.length === 0) return;
      before = body.members[body.members.length - 1]!.user;
    }
  }

  private ask(op: Operation, fields: object): Promise<AckEvent> {
    return this.conn.request(this.group, op, fields) as Promise<AckEvent>;
  }

  // ---- from the connection ---------------------------------------------------------------

  /** The subscribe was answered with the group's last seq; `resuming`: a replay and `resumed` follow. */
  subscribeAnswered(lastSeq: number, resuming: boolean): void {
    if (resuming) return this.setState("syncing");
    const first = this.seq === null;
    this.seq ??= lastSeq;
    this.setState("live");
    this.settle.resolve();
    if (first) {
      this.loadLatest().catch((err) => this.emit("error", err));
      this.loadMembers().catch((err) => this.emit("error", new ChatRequestError("unavailable", `members: ${(err as Error).message}`)));
    }
  }

  subscribeFailed(e: ChatRequestError): void {
    this.settle.reject(e);
    this.emit("error", e);
  }

  dropped(): void {
    if (this.current !== "closed") this.setState("offline");
  }

  closed(): void {
    this.setState("closed");
  }

  receive(f: ServerEvent): void {
    switch (f.operation) {
      case "create":
      case "reply":
      case "update":
      case "delete": {
        if (this.seq !== null && f.seq <= this.seq) return; // a replay overlapping what we had
        if (this.seq !== null && f.seq !== this.seq + 1) {
          this.setState("syncing");
          return this.conn.resync(this); // replayed from our seq
        }
        this.seq = f.seq;
        if (f.operation === "delete") this.timeline.deleted(f.message_id);
        else this.timeline.stored(f.message, f.operation === "update");
        return this.emit("change");
      }
      case "resumed":
        if (this.seq === null || f.seq > this.seq) this.seq = f.seq;
        this.setState("live");
        this.settle.resolve();
        if (this.timeline.messages.length === 0) this.loadLatest().catch((err) => this.emit("error", err));
        return;
      case "read":
        if (this.markers.read(f)) {
          this.emit("read", f);
          this.emit("change");
        }
        return;
      case "seen":
        if (this.timeline.seen(f)) this.emit("change");
        return;
      case "typing":
        return this.emit("typing", f);
      case "error":
        // A since beyond the group's last seq (the stream we knew is gone): live from here.
        this.emit("error", new ChatRequestError(f.code, f.message));
        if (this.current === "syncing") {
          this.seq = null;
          this.setState("live");
          this.settle.resolve();
        }
        return;
      default:
        return;
    }
  }

  private setState(state: GroupViewState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", state);
  }
}
