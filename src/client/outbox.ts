// The one outbox of a connection: every operation not answered yet, of any group, in the order
// it was made. What it promises:
// - each operation's promise settles exactly once: with its answer, or with a ChatRequestError
//   (the server's code; `timeout` when no answer came within `timeoutMs` of sending or the
//   operation waited `queueTimeoutMs` in all, offline and reloads included; `closed`);
// - an operation keeps its `request_id` for life: sent again after a reconnect, after an
//   `unavailable` or `rate_limited` answer (after a backoff) or after a page reload, the server
//   applies it once;
// - with a storage, each group's stored operations (create, reply, update, delete, seen) are
//   saved under `chatroom.outbox.<group>.<user>` (saved-outbox.ts) and taken over by the next
//   outbox of the same user that follows the group.
// It never touches a socket: the connection asks which operations wait (`waiting`) and reports
// what it sent (`sent`) and lost (`lost`).
import type { AckEvent, GroupsEvent, HistoryEvent, Operation, PresenceEvent } from "../protocol/index.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { ChatRequestError } from "./errors.ts";
import { isSaved, SavedOutbox, type OutboxStorage, type SavedOperation } from "./saved-outbox.ts";

export type Answer = AckEvent | HistoryEvent | PresenceEvent | GroupsEvent;

export interface Pending {
  readonly requestId: string;
  readonly op: Operation;
  /** The group it names; null for `groups`, which names none. */
  readonly group: string | null;
  readonly payload: string;
  /** The message a delete targets (a retried delete of a message seen deleted succeeded). */
  readonly target: string | undefined;
  /** When it was made (ms since the epoch); a restored operation keeps its original time. */
  readonly at: number;
  /** Sent on the current socket and awaiting its answer. */
  sent: boolean;
  attempts: number;
  /** Its group's timeline version when last sent: a history page merges in only what changed after. */
  sentVersion: number;
  resolve: (answer: Answer) => void;
  reject: (err: ChatRequestError) => void;
  answerTimer?: ReturnType<typeof setTimeout>;
  lifeTimer?: ReturnType<typeof setTimeout>;
  retryTimer?: ReturnType<typeof setTimeout>;
}

/** An operation a previous client (before a reload) left in the saved outbox, sent again. */
export interface RestoredOperation {
  requestId: string;
  operation: Operation;
  /** The frame as it was sent. */
  frame: Record<string, unknown>;
  /** Its answer, or a ChatRequestError (never an unhandled rejection). */
  result: Promise<AckEvent>;
}

export interface OutboxOptions {
  timeoutMs: number;
  queueTimeoutMs: number;
  backoff: Required<BackoffOptions>;
  outboxMaxAgeMs: number;
  storage?: OutboxStorage;
}

export class Outbox {
  private pending = new Map<string, Pending>();
  private readonly saved = new Map<string, SavedOutbox>();

  constructor(
    private readonly opts: OutboxOptions,
    /** A retry's backoff ran out: the connection sends what waits. */
    private readonly onRetryDue: () => void,
    private readonly onSaveError: (err: Error) => void,
  ) {}

  /** Operations not answered yet, of one group or of all. */
  count(group?: string): number {
    if (group === undefined) return this.pending.size;
    let n = 0;
    for (const p of this.pending.values()) if (p.group === group) n++;
    return n;
  }

  get(requestId: string | undefined): Pending | undefined {
    return requestId === undefined ? undefined : this.pending.get(requestId);
  }

  /** Adds an operation; its lifetime starts at `at`. */
  add(o: { requestId: string; op: Operation; group: string | null; payload: string; target?: string; at?: number }): { promise: Promise<Answer>; pending: Pending } {
    const { promise, pending } = this.track({ ...o, target: o.target, at: o.at ?? Date.now() });
    this.pending.set(pending.requestId, pending);
    this.persist(pending);
    return { promise, pending };
  }

  /** Unsent operations whose backoff (if any) is over, oldest first; `ready(group)` says whether their group may send now. */
  *waiting(ready: (group: string | null) => boolean): Generator<Pending> {
    for (const p of [...this.pending.values()]) if (!p.sent && p.retryTimer === undefined && this.pending.has(p.requestId) && ready(p.group)) yield p;
  }

  /** `p` went out on the socket: its answer is due within timeoutMs. */
  sent(p: Pending, version: number): void {
    p.sent = true;
    p.attempts++;
    p.sentVersion = version;
    clearTimeout(p.answerTimer);
    p.answerTimer = setTimeout(() => this.fail(p, new ChatRequestError("timeout", `no answer to ${p.op} within ${this.opts.timeoutMs} ms`, p.requestId)), this.opts.timeoutMs);
  }

  /** The socket is gone: whatever was sent on it goes again on the next one. */
  lost(group?: string): void {
    for (const p of this.pending.values()) {
      if (group !== undefined && p.group !== group) continue;
      p.sent = false;
      clearTimeout(p.answerTimer);
    }
  }

  answered(p: Pending, answer: Answer): void {
    if (!this.settle(p)) return;
    p.resolve(answer);
  }

  /** Tries again after a backoff, with the same request_id (an `unavailable` or `rate_limited` answer). */
  retryLater(p: Pending): void {
    p.sent = false;
    clearTimeout(p.answerTimer);
    p.retryTimer = setTimeout(() => {
      p.retryTimer = undefined;
      this.onRetryDue();
    }, backoffDelay(p.attempts - 1, this.opts.backoff));
  }

  fail(p: Pending, err: ChatRequestError): void {
    if (!this.settle(p)) return;
    p.reject(err);
  }

  /** Rejects every operation (of one group, or all) with `closed`; their saved copies go too. */
  close(message: string, group?: string): void {
    for (const p of [...this.pending.values()]) if (group === undefined || p.group === group) this.fail(p, new ChatRequestError("closed", message, p.requestId));
  }

  /**
   * Once the user is known: takes over the operations an earlier client saved for this group
   * and user, ahead of the group's operations made since. Once per group.
   */
  restore(group: string, user: string | undefined, reframe: (frame: Record<string, unknown>) => string): RestoredOperation[] {
    if (!this.opts.storage || this.saved.has(group)) return [];
    const saved = new SavedOutbox(this.opts.storage, `chatroom.outbox.${group}.${user ?? ""}`, this.onSaveError);
    this.saved.set(group, saved);
    const maxAge = Math.min(this.opts.queueTimeoutMs, this.opts.outboxMaxAgeMs);
    const restored: RestoredOperation[] = [];
    const fresh: Pending[] = [];
    for (const s of saved.claim(Date.now() - maxAge)) {
      if (this.pending.has(s.request_id)) continue;
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(s.payload) as Record<string, unknown>;
      } catch {
        continue;
      }
      // Saved by either endpoint's client: the frame is put in this connection's shape (with or without `group`).
      const payload = reframe(parsed);
      const { promise, pending } = this.track({ requestId: s.request_id, op: s.operation, group, target: s.target, payload, at: s.at });
      pending.attempts = 1; // it may have reached the server before the reload
      fresh.push(pending);
      promise.catch(() => {}); // the application sees it through `restored`, if it listens
      const { operation: _, request_id: __, group: ___, ...frame } = parsed;
      restored.push({ requestId: s.request_id, operation: s.operation, frame, result: promise as Promise<AckEvent> });
    }
    // The restored operations go first: they were made before anything this client made.
    const before = this.pending;
    this.pending = new Map([...fresh.map((p) => [p.requestId, p] as const), ...before]);
    this.write(group);
    return restored;
  }

  private track(o: { requestId: string; op: Operation; group: string | null; target: string | undefined; payload: string; at: number }): { promise: Promise<Answer>; pending: Pending } {
    let p!: Pending;
    const promise = new Promise<Answer>((resolve, reject) => {
      p = { ...o, resolve, reject, sent: false, attempts: 0, sentVersion: 0 };
    });
    if (Number.isFinite(this.opts.queueTimeoutMs)) {
      const left = Math.max(0, o.at + this.opts.queueTimeoutMs - Date.now());
      p.lifeTimer = setTimeout(() => this.fail(p, new ChatRequestError("timeout", `${o.op} not answered within ${this.opts.queueTimeoutMs} ms`, o.requestId)), left);
    }
    return { promise, pending: p };
  }

  private settle(p: Pending): boolean {
    if (this.pending.get(p.requestId) !== p) return false;
    clearTimeout(p.answerTimer);
    clearTimeout(p.lifeTimer);
    clearTimeout(p.retryTimer);
    p.retryTimer = undefined;
    this.pending.delete(p.requestId);
    this.persist(p);
    return true;
  }

  /** Writes the group's stored operations still waiting, when `p` is one that is saved. */
  private persist(p: Pending): void {
    if (p.group !== null && isSaved(p.op)) this.write(p.group);
  }

  private write(group: string): void {
    const saved = this.saved.get(group);
    if (!saved) return;
    const list: SavedOperation[] = [];
    for (const p of this.pending.values()) {
      if (p.group === group && isSaved(p.op)) list.push({ request_id: p.requestId, operation: p.op, payload: p.payload, target: p.target, at: p.at });
    }
    saved.save(list);
  }
}
