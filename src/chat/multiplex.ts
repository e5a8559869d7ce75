// A multiplexed socket (`/ws/`) as the dispatcher sees it: the groups it follows and how to follow
// more. The gateway implements it over the socket's Subscriber (src/chat/subscriber.ts), which
// owns every per-group guarantee (replay, `resumed`, no gap or repeat at the seam); this seam
// only adds who may follow what, and how many.
export interface Multiplex {
  /** Whether the socket follows the group. */
  has(group: string): boolean;
  /**
   * Starts following the group: checks the token's `groups` claim (`forbidden`) and
   * MAX_SUBSCRIPTIONS_PER_SOCKET (`too_large`), waits until the node hears the group, and returns
   * the group's last seq with `start`, which begins the delivery (a replay from `since`, then
   * `resumed`, then live; or live at once). The dispatcher calls `start` after the ack is sent.
   * `presence`: the group's join/leave events too. Already following: the seq, and a `start`
   * that does nothing (to change `presence`, unsubscribe first).
   */
  subscribe(group: string, since: number | null, presence?: boolean): Promise<{ seq: number; start: () => void }>;
  /** Stops following the group; false when it did not. */
  unsubscribe(group: string): boolean;
}
