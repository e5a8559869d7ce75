// The WebSocket upgrade of `/ws/`, the multiplexed endpoint: the origin (403), identity
// (401/503; in open dev mode `?user=` is required: 400), sockets per user (429). No group is
// joined here: each `subscribe` frame joins its own (see multiplex.ts), under the token's
// `groups` claim, which the connection keeps.
import { randomUUID } from "node:crypto";
import { deferred, send } from "../uws/respond.ts";
import { Connection, type SocketData } from "./connection.ts";
import { NOT_A_HANDSHAKE, upgradeRequest, type UpgradeDeps } from "./upgrade.ts";
import { asksForUpgrade, upgradeLater } from "../uws/late-upgrade.ts";
import type { HttpRequest, HttpResponse, us_socket_context_t } from "../uws/uws.ts";

/** No group is asked for at the upgrade, so the groups-per-node check has nothing to refuse. */
const NO_GROUP = { size: 0, has: () => true };

export function upgradeMux(deps: UpgradeDeps, res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t): void {
  const { key, connection, protocol, extensions, authorization, origin, query } = upgradeRequest(req);
  const aborted = deferred(res);
  if (!asksForUpgrade(connection)) return send(res, 400, NOT_A_HANDSHAKE);
  if (deps.closing()) return send(res, 503, "server shutting down");
  if (!deps.limits.originAllowed(origin)) return send(res, 403, "origin not allowed");
  void (async () => {
    const who = await deps.identity.identify({ authorization, query });
    if (!who.ok) return send(res, who.status, who.message, {}, aborted);
    if (who.user === null) return send(res, 400, "user is required on /ws/ (?user= in open dev mode)", {}, aborted);
    const admitted = deps.limits.admit(who.user, "", "", NO_GROUP); // a user is required here, so no address is needed
    if (!admitted.ok) return send(res, admitted.status, admitted.message, {}, aborted);
    const conn = new Connection(randomUUID(), "", who.user, null, admitted.quota, deps.endGraceMs, who.expiresAt ?? null);
    conn.allowedGroups = who.groups ?? null;
    const data: SocketData = { conn };
    upgradeLater(res, data, { key, protocol, extensions, ctx }, deps.corkElsewhere, () => !aborted() && !deps.closing(), () => {
      deps.limits.release(admitted.quota);
      send(res, 503, "server shutting down", {}, aborted);
    });
  })().catch((err) => {
    deps.log.error({ err }, "upgrade failed");
    send(res, 500, "internal error", {}, aborted);
  });
}
