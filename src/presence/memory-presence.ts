// In-process presence for the embedded default: one node, so the node's own holds are the whole
// truth. The holds keep each group's users in the order they became present, which is `since`
// order, so the snapshot reads them there (nothing is kept twice).
import { LocalHolds } from "./holds.ts";
import type { Presence, PresenceListener, PresenceOptions, PresenceSnapshot } from "./presence.ts";

export class MemoryPresence implements Presence {
  private readonly local: LocalHolds;

  constructor(opts: Pick<PresenceOptions, "graceMs">, private readonly onChange: PresenceListener) {
    this.local = new LocalHolds(
      opts.graceMs,
      (group, user) => this.onChange({ kind: "join", group, user, count: this.local.count(group) }),
      (group, user) => this.onChange({ kind: "leave", group, user, count: this.local.count(group) }),
    );
  }

  open(group: string, user: string): void {
    this.local.open(group, user);
  }

  close(group: string, user: string): void {
    this.local.close(group, user);
  }

  async snapshot(group: string, limit: number): Promise<PresenceSnapshot> {
    const out: PresenceSnapshot["users"] = [];
    for (const [user, since] of this.local.users(group)) {
      if (out.length >= limit) break;
      out.push({ user, since });
    }
    return { count: this.local.count(group), users: out };
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.local.clear();
  }

  get held(): number {
    return this.local.size;
  }
}
