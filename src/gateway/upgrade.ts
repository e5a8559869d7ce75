// The WebSocket upgrade of /ws/chat/<group>/: the group rule, `since` and `presence` (400), the origin (403),
// identity (401/403/503), the node's limits (429/503), then one membership of the group (503 when
// the bus does not answer), all before the socket exists. A refused upgrade takes nothing.
import { randomUUID } from "node:crypto";
import type { Subscriptions } from "../chat/subscriptions.ts";
import { deferred, send } from "../uws/respond.ts";
import { asksForUpgrade, upgradeLater, type CorkElsewhere } from "../uws/late-upgrade.ts";
import { Connection, type SocketData } from "./connection.ts";
import type { IdentityProvider } from "../identity/identity.ts";
import type { ConnectionLimits, GroupCount } from "./limits.ts";
import { groupParam, parseFlag, parseSince } from "../protocol/params.ts";
import type { HttpRequest, HttpResponse, us_socket_context_t } from "../uws/uws.ts";

export interface UpgradeDeps {
  identity: IdentityProvider;
  limits: ConnectionLimits;
  subscriptions: Subscriptions;
  /** The node's groups (admission counts them). */
  groups: GroupCount;
  closing(): boolean;
  /** How long a close waits for a socket's queue to drain. */
  endGraceMs: number;
  /** Runs a function inside the cork of another open socket (see uws/late-upgrade.ts). */
  corkElsewhere: CorkElsewhere;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/** What an upgrade reads off its request: uWS allows this only before the handler returns. */
export function upgradeRequest(req: HttpRequest) {
  return {
    key: req.getHeader("sec-websocket-key"),
    connection: req.getHeader("connection"),
    protocol: req.getHeader("sec-websocket-protocol"),
    extensions: req.getHeader("sec-websocket-extensions"),
    authorization: req.getHeader("authorization"),
    origin: req.getHeader("origin"),
    query: new URLSearchParams(req.getQuery() ?? ""),
  };
}

/** The answer to an upgrade request whose `Connection` header does not ask for one. */
export const NOT_A_HANDSHAKE = "not a WebSocket handshake: Connection must include Upgrade";

export function upgradeChat(deps: UpgradeDeps, res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t): void {
  const { key, connection, protocol, extensions, authorization, origin, query } = upgradeRequest(req);
  // Read now: uWS invalidates the response's socket data once this callback returns.
  const address = Buffer.from(res.getRemoteAddressAsText()).toString();
  const group = groupParam(req.getParameter(0) ?? "");
  const aborted = deferred(res);
  if (!asksForUpgrade(connection)) return send(res, 400, NOT_A_HANDSHAKE);
  if (group === null) return send(res, 400, "invalid group name: 1 to 99 characters of A-Z a-z 0-9 - _ .");
  const since = parseSince(query.get("since"));
  if (since === undefined) return send(res, 400, "since must be an integer >= 0");
  const presence = parseFlag(query.get("presence"));
  if (presence === undefined) return send(res, 400, "presence must be 1 or 0");
  if (deps.closing()) return send(res, 503, "server shutting down");
  if (!deps.limits.originAllowed(origin)) return send(res, 403, "origin not allowed");
  void (async () => {
    const who = await deps.identity.identify({ authorization, query, group });
    if (!who.ok) return send(res, who.status, who.message, {}, aborted);
    // Limits are checked here, after identity and right before the join, in the same tick.
    const admitted = deps.limits.admit(who.user, address, group, deps.groups);
    if (!admitted.ok) return send(res, admitted.status, admitted.message, {}, aborted);
    const quota = admitted.quota;
    try {
      await deps.subscriptions.join(group);
    } catch (err) {
      deps.limits.release(quota);
      deps.log.warn({ err, group }, "could not subscribe to group");
      return send(res, 503, "event bus unavailable", {}, aborted);
    }
    const data: SocketData = { conn: new Connection(randomUUID(), group, who.user, since, quota, deps.endGraceMs, who.expiresAt ?? null, presence) };
    upgradeLater(res, data, { key, protocol, extensions, ctx }, deps.corkElsewhere, () => !aborted() && !deps.closing(), () => {
      deps.subscriptions.leave(group);
      deps.limits.release(quota);
      send(res, 503, "server shutting down", {}, aborted);
    });
  })().catch((err) => {
    deps.log.error({ err, group }, "upgrade failed");
    send(res, 500, "internal error", {}, aborted);
  });
}
