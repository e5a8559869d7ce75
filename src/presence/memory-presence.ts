// In-process presence for the embedded default: one node, so the node's own holds are the whole
// truth. Users sit in a Map in the order they became present, which is `since` order.
import { LocalHolds } from "./holds.ts";
import type { Presence, PresenceListener, PresenceOptions, PresenceSnapshot } from "./presence.ts";

export class MemoryPresence implements Presence {
  private readonly groups = new Map<string, Map<string, number>>();
  private readonly local: LocalHolds;

  constructor(opts: Pick<PresenceOptions, "graceMs">, private readonly onChange: PresenceListener) {
    this.local = new LocalHolds(
      opts.graceMs,
      (group, user, since) => {
        let users = this.groups.get(group);
        if (!users) this.groups.set(group, (users = new Map()));
        users.set(user, since);
        this.onChange({ kind: "join", group, user, count: users.size });
      },
      (group, user) => {
        const users = this.groups.get(group);
        if (!users?.delete(user)) return;
        if (users.size === 0) this.groups.delete(group);
        this.onChange({ kind: "leave", group, user, count: users.size });
      },
    );
  }

  open(group: string, user: string): void {
    this.local.open(group, user);
  }

  close(group: string, user: string): void {
    this.local.close(group, user);
  }

  async snapshot(group: string, limit: number): Promise<PresenceSnapshot> {
    const users = this.groups.get(group);
    if (!users) return { count: 0, users: [] };
    const out: PresenceSnapshot["users"] = [];
    for (const [user, since] of users) {
      if (out.length >= limit) break;
      out.push({ user, since });
    }
    return { count: users.size, users: out };
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.local.clear();
    this.groups.clear();
  }

  get held(): number {
    return this.local.size;
  }
}
