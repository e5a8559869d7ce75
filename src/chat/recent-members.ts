// The (group, user) pairs this node made members recently, so that a write or a subscribe does
// not insert the membership row again each time. A pair is remembered for between `ttlMs / 2`
// and `ttlMs` after it was added (then the next touch inserts again, which also heals a
// membership ended meanwhile by a leave on another node), and at most 2 x `maxPairs` are kept.
//
// Memory (issue 12): a `/ws/` socket subscribing to 500 groups adds 500 pairs, so a pair is one
// entry of its group's set of users (the socket's own user string): two generations of those
// sets, the older one dropped whole when the newer one is half a TTL old or full.
export class RecentMembers {
  private current = new Map<string, Set<string>>();
  private previous = new Map<string, Set<string>>();
  private currentPairs = 0;
  private startedAt: number;

  constructor(
    private readonly ttlMs: number,
    private readonly maxPairs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  has(group: string, user: string): boolean {
    this.age();
    return this.current.get(group)?.has(user) === true || this.previous.get(group)?.has(user) === true;
  }

  add(group: string, user: string): void {
    this.age();
    let users = this.current.get(group);
    if (!users) this.current.set(group, (users = new Set()));
    if (users.has(user)) return;
    users.add(user);
    if (++this.currentPairs >= this.maxPairs) this.turn();
  }

  delete(group: string, user: string): void {
    for (const gen of [this.current, this.previous]) {
      const users = gen.get(group);
      if (users?.delete(user) && users.size === 0) gen.delete(group);
    }
  }

  private age(): void {
    if (this.now() - this.startedAt >= this.ttlMs / 2) this.turn();
  }

  private turn(): void {
    this.previous = this.current;
    this.current = new Map();
    this.currentPairs = 0;
    this.startedAt = this.now();
  }
}
