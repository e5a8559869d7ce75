// What the SDK knows of a group's messages: the list in order, each message in its latest state,
// who has seen what, and which messages were deleted. It knows nothing of sockets or requests;
// the client feeds it events and history pages and tells it which version a request saw.
import type { MessageView, SeenEvent } from "../protocol/index.ts";

interface Stored {
  message: MessageView;
  /** The version of the last event applied to it; 0 for a message from history. */
  version: number;
}

/** Deleted ids kept to recognise a retried delete that had already gone through. */
const REMEMBERED_DELETES = 10_000;

export class Timeline {
  private store = new Map<string, Stored>();
  private order: string[] = [];
  private ordered: MessageView[] | null = null;
  /** Counts the events applied: a history page merges in only what changed after it was asked. */
  private applied = 0;
  private more = false;
  private readonly seenByMessage = new Map<string, Map<string, string>>();
  private readonly deletedIds = new Set<string>();

  /** The messages known so far, oldest first, in their current state (tombstones included). */
  get messages(): readonly MessageView[] {
    return (this.ordered ??= this.order.map((id) => this.store.get(id)!.message));
  }

  message(id: string): MessageView | undefined {
    return this.store.get(id)?.message;
  }

  get hasMore(): boolean {
    return this.more;
  }

  get version(): number {
    return this.applied;
  }

  get oldestId(): string | undefined {
    return this.order[0];
  }

  seenBy(messageId: string): ReadonlyMap<string, string> {
    return this.seenByMessage.get(messageId) ?? new Map();
  }

  wasDeleted(messageId: string): boolean {
    return this.deletedIds.has(messageId);
  }

  /** A delete event: the message, if known, becomes a tombstone, which is returned. */
  deleted(messageId: string): MessageView | undefined {
    const version = ++this.applied;
    this.deletedIds.add(messageId);
    if (this.deletedIds.size > REMEMBERED_DELETES) this.deletedIds.delete(this.deletedIds.values().next().value!);
    const known = this.store.get(messageId);
    if (!known) return undefined;
    const tombstone = { ...known.message, body: null, file: null, attachment: null, deleted: true };
    this.store.set(messageId, { message: tombstone, version });
    this.ordered = null;
    return tombstone;
  }

  /** A create, reply or update event. */
  stored(m: MessageView, isUpdate: boolean): void {
    const version = ++this.applied;
    const known = this.store.has(m.id);
    // An edit of a message older than what was loaded has no place in the list.
    if (known || !isUpdate) {
      this.store.set(m.id, { message: m, version });
      if (!known) this.order.push(m.id);
      this.ordered = null;
    }
  }

  /** A seen receipt; false when it was already known. */
  seen(e: SeenEvent): boolean {
    let users = this.seenByMessage.get(e.message_id);
    if (!users) this.seenByMessage.set(e.message_id, (users = new Map()));
    if (users.has(e.user)) return false;
    users.set(e.user, e.seen_at);
    return true;
  }

  /** A page from before the oldest known message goes in front. */
  older(messages: readonly MessageView[], hasMore: boolean): void {
    const older = messages.filter((m) => !this.store.has(m.id));
    for (const m of older) this.store.set(m.id, { message: m, version: 0 });
    this.order = [...older.map((m) => m.id), ...this.order];
    this.ordered = null;
    this.more = hasMore;
  }

  /**
   * The newest page replaces the list, but what an event changed after the request went out (at
   * `sinceVersion`) is newer than the page: the page was read when the request arrived, and an
   * event may have been delivered before its answer.
   */
  latest(messages: readonly MessageView[], hasMore: boolean, sinceVersion: number): void {
    const fresh = (id: string) => {
      const s = this.store.get(id);
      return s && s.version > sinceVersion ? s : undefined;
    };
    const store = new Map<string, Stored>();
    const order: string[] = [];
    for (const m of messages) {
      store.set(m.id, fresh(m.id) ?? { message: m, version: 0 });
      order.push(m.id);
    }
    for (const id of this.order) {
      const s = fresh(id);
      if (s && !store.has(id)) {
        store.set(id, s);
        order.push(id);
      }
    }
    this.store = store;
    this.order = order;
    this.ordered = null;
    this.more = hasMore;
  }
}
