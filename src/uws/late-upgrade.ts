// Finishing a WebSocket upgrade after an await (identity, the group's bus subscription), around
// two defects of the uWebSockets core in uWebSockets.js 20.30, the only build that loads on these
// machines (both are fixed upstream, in builds that need glibc 2.38):
// - HttpResponse::cork(), when the upgrade ran inside it and the socket was reallocated in place,
//   reads the new WebSocket's memory as HTTP response state and may shut the socket down right
//   after `open`: no close frame, 1006 at both ends (uWebSockets #1929). Random bytes decide, so
//   about one upgrade in 10,000 died; a request with `Connection: close` died every time.
// - The parser's "an upgrade happened" mark is per server, not per connection: an upgrade done
//   while another connection's request is being parsed (a promise settled inside that request's
//   callback) is taken for that connection's (uWebSockets #1929's sibling, bun #37463).
// So the upgrade runs in its own macrotask (setImmediate: never inside a uWS callback), inside
// the cork of another open socket when there is one. HttpResponse::cork() then finds the loop
// corked by someone else and only runs its callback, skipping the faulty check, while uWebSockets.js
// still sees a cork callback. With no other socket open it upgrades uncorked, which is correct
// but makes uWebSockets.js print one "writes must be made from within a corked callback" warning.
import type { HttpResponse, us_socket_context_t } from "./uws.ts";

/** Runs `fn` inside the cork of some open WebSocket of this loop; false when there is none. */
export type CorkElsewhere = (fn: () => void) => boolean;

export interface Handshake {
  key: string;
  protocol: string;
  extensions: string;
  ctx: us_socket_context_t;
}

/**
 * Upgrades `res` on the next turn of the loop with `data` as the socket's user data, unless
 * `stillWanted()` says no by then (the client went away, the node is closing): then `giveUp()`
 * releases what the upgrade took and answers, and nothing is upgraded.
 */
export function upgradeLater<T>(res: HttpResponse, data: T, hs: Handshake, corkElsewhere: CorkElsewhere, stillWanted: () => boolean, giveUp: () => void): void {
  setImmediate(() => {
    if (!stillWanted()) return giveUp();
    const upgrade = () => res.cork(() => res.upgrade(data, hs.key, hs.protocol, hs.extensions, hs.ctx));
    if (!corkElsewhere(upgrade)) res.upgrade(data, hs.key, hs.protocol, hs.extensions, hs.ctx);
  });
}

/**
 * Whether a `Connection` header lists the `upgrade` token, as RFC 6455 requires of a handshake.
 * uWS marks a request whose `Connection` value is 5 characters long ("close") to be closed once
 * answered, and an upgrade finished uncorked would then open a WebSocket on a closed socket whose
 * close handler never runs: such a request is refused before anything is taken.
 */
export function asksForUpgrade(connection: string): boolean {
  return connection.split(",").some((token) => token.trim().toLowerCase() === "upgrade");
}
