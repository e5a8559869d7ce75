// The node's public HTTP surface: history and attachments (probes and metrics: probes.ts). Anything else is 404.
import * as v from "valibot";
import type { ChatService } from "../chat/service.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { clientError } from "../chat/store-guard.ts";
import { EntityId, HISTORY_MAX_LIMIT, HistoryLimit } from "../protocol/index.ts";
import { refusalCode, type IdentityProvider, type IdentityResult } from "../identity/identity.ts";
import { groupParam } from "../protocol/params.ts";
import type { HttpRequest, HttpResponse, TemplatedApp } from "../uws/uws.ts";
import type { HttpBudget } from "./budget.ts";
import { registerFileRoute } from "./files.ts";
import { deferred, send, sendAnswer, sendJson, type Status } from "../uws/respond.ts";
import { registerPageRoutes } from "./page.ts";
import { registerReadStateRoutes } from "./read-state-routes.ts";
import type { ReadState } from "../chat/read-state.ts";

export interface HttpDeps {
  service: ChatService;
  /** Membership and read state: GET /api/me/groups, GET /api/groups/<group>/members. */
  reads: ReadState;
  metrics: Metrics;
  identity: IdentityProvider;
  /** The node-wide budget for HTTP answers being written (file downloads, history pages). */
  httpBudget: HttpBudget;
  log: { error(obj: object, msg: string): void };
}

export const HistoryQuery = v.object({
  before: v.optional(EntityId),
  limit: v.optional(
    v.pipe(v.string(), v.regex(/^\d{1,3}$/, `limit must be 1 to ${HISTORY_MAX_LIMIT}`), v.toNumber(), HistoryLimit),
    "50",
  ),
});

const CODE_STATUS: Record<string, Status> = {
  bad_request: 400,
  forbidden: 403,
  not_found: 404,
  rate_limited: 429,
  unavailable: 503,
};

/**
 * What an HTTP route answers for an error. A database that cannot be reached or does not answer in
 * time (the pool's connect timeout under overload, a connection lost) is `unavailable` (503, retry),
 * as it is for a frame (dispatch.ts), whether or not the call went through the store guard.
 */
export function errorStatus(err: unknown): { status: Status; code: string; message: string } {
  const known = clientError(err);
  if (known) return { status: CODE_STATUS[known.code] ?? 500, code: known.code, message: known.message };
  return { status: 500, code: "internal", message: "internal error" };
}

export function registerHttpRoutes(app: TemplatedApp, deps: HttpDeps): void {
  const { service, metrics, identity } = deps;

  const credentials = (req: HttpRequest, group?: string) => ({
    authorization: req.getHeader("authorization"),
    query: new URLSearchParams(req.getQuery() ?? ""),
    group,
  });

  const refused = (res: HttpResponse, aborted: () => boolean, who: Extract<IdentityResult, { ok: false }>) =>
    sendJson(res, who.status, { error: refusalCode(who.status), message: who.message }, aborted);

  const failed = (res: HttpResponse, aborted: () => boolean, err: unknown) => {
    const e = errorStatus(err);
    if (e.status === 500) deps.log.error({ err }, "http request failed");
    sendJson(res, e.status, { error: e.code, message: e.message }, aborted);
  };

  app.get("/api/groups/:group/messages", (res, req) => {
    const group = groupParam(req.getParameter(0) ?? "");
    const creds = credentials(req, group ?? "");
    const aborted = deferred(res);
    if (group === null) return sendJson(res, 400, { error: "bad_request", message: "invalid group name" }, aborted);
    const query = v.safeParse(HistoryQuery, Object.fromEntries(creds.query));
    if (!query.success) return sendJson(res, 400, { error: "bad_request", message: query.issues[0].message }, aborted);
    void (async () => {
      try {
        const who = await identity.identify(creds);
        if (!who.ok) return refused(res, aborted, who);
        const out = await service.history({ group, user: who.user }, { before: query.output.before, limit: query.output.limit });
        // A page is bounded (HISTORY_MAX_LIMIT messages) but up to a few MB: it is held until the
        // client has read it, so it counts against the node's HTTP budget.
        const body = Buffer.from(JSON.stringify({ messages: out.messages, has_more: out.has_more }));
        const held = deps.httpBudget.reserve(body.byteLength);
        if (typeof held === "string") {
          metrics.limitHits.inc({ limit: held });
          metrics.errors.inc({ code: "unavailable" });
          return sendJson(res, 503, { error: "unavailable", message: "this node is busy writing answers; retry shortly" }, aborted);
        }
        void sendAnswer(res, 200, body, { "Content-Type": "application/json" }, aborted).finally(() => held.release());
      } catch (err) {
        failed(res, aborted, err);
      }
    })();
  });

  app.get("/api/groups/:group/presence", (res, req) => {
    const group = groupParam(req.getParameter(0) ?? "");
    const creds = credentials(req, group ?? "");
    const aborted = deferred(res);
    if (group === null) return sendJson(res, 400, { error: "bad_request", message: "invalid group name" }, aborted);
    void (async () => {
      try {
        const who = await identity.identify(creds);
        if (!who.ok) return refused(res, aborted, who);
        sendJson(res, 200, await service.presenceOf(group), aborted);
      } catch (err) {
        failed(res, aborted, err);
      }
    })();
  });

  registerFileRoute(app, {
    service,
    metrics,
    budget: deps.httpBudget,
    failed,
    authorize: (req, res, aborted) => {
      const creds = credentials(req);
      return async (group) => {
        const who = await identity.identify({ ...creds, group });
        if (!who.ok) refused(res, aborted, who);
        return who.ok;
      };
    },
  });

  registerReadStateRoutes(app, deps, { refused, failed }); // GET /api/me/groups, /api/groups/<group>/members
  registerPageRoutes(app, deps.log); // GET / and /assets/*: the chat page

  app.any("/*", (res) => sendJson(res, 404, { error: "not_found", message: "no such route" }));
}
