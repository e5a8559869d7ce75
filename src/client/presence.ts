// Who is online in the group, as the client knows it: the server's `presence` answer (asked for
// each time the connection goes live, so whatever was missed while offline is repaired), kept
// current by `join` and `leave` events in between. `count` is the server's exact count; `users`
// holds at most the 100 longest present from the answer plus those who joined since. In a group
// past the server's PRESENCE_MAX_BROADCAST no events come: the list is the last answer's.
import type { PresenceChangeEvent, PresenceEvent } from "../protocol/index.ts";

export interface PresenceState {
  /** Present users (the server's exact count, adjusted by events since). */
  count: number;
  /** Present users known by name, longest present first. */
  users: string[];
}

export class PresenceList {
  private readonly users = new Map<string, string | null>();
  private count = 0;

  constructor(private readonly changed: (state: PresenceState) => void) {}

  get state(): PresenceState {
    return { count: this.count, users: [...this.users.keys()] };
  }

  /** Replaces everything with a `presence` answer. */
  answer(a: PresenceEvent): void {
    this.users.clear();
    for (const u of a.users) this.users.set(u.user, u.since);
    this.count = a.count;
    this.changed(this.state);
  }

  /** A join or leave; repeats (a join of someone present) change nothing. */
  event(e: PresenceChangeEvent): void {
    if (e.operation === "join") {
      if (this.users.has(e.user)) return;
      this.users.set(e.user, null);
      this.count++;
    } else {
      if (!this.users.delete(e.user) && this.count <= this.users.size) return;
      this.count = Math.max(this.users.size, this.count - 1);
    }
    this.changed(this.state);
  }

  clear(): void {
    if (this.count === 0 && this.users.size === 0) return;
    this.users.clear();
    this.count = 0;
    this.changed(this.state);
  }
}
