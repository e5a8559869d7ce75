// Membership and read state over HTTP (issue 12): a user's conversation list and a group's
// members with their read markers. Same identity rules as the history route; the conversation
// list needs a user (the token's `sub`, or `?user=` in open dev mode).
import * as v from "valibot";
import { GroupsCursor, HISTORY_MAX_LIMIT, HistoryLimit, UserId } from "../protocol/index.ts";
import type { IdentityResult } from "../identity/identity.ts";
import { groupParam } from "../protocol/params.ts";
import type { HttpRequest, HttpResponse, TemplatedApp } from "../uws/uws.ts";
import { deferred, sendJson } from "../uws/respond.ts";
import type { HttpDeps } from "./routes.ts";

const limit = v.optional(v.pipe(v.string(), v.regex(/^\d{1,3}$/, `limit must be 1 to ${HISTORY_MAX_LIMIT}`), v.toNumber(), HistoryLimit), "50");
export const GroupsQuery = v.object({ before: v.optional(GroupsCursor), limit });
export const MembersQuery = v.object({ before: v.optional(UserId), limit });

interface Answer {
  refused(res: HttpResponse, aborted: () => boolean, who: Extract<IdentityResult, { ok: false }>): void;
  failed(res: HttpResponse, aborted: () => boolean, err: unknown): void;
}

export function registerReadStateRoutes(app: TemplatedApp, deps: HttpDeps, answer: Answer): void {
  const credentials = (req: HttpRequest, group?: string) => ({
    authorization: req.getHeader("authorization"),
    query: new URLSearchParams(req.getQuery() ?? ""),
    group,
  });

  app.get("/api/me/groups", (res, req) => {
    const creds = credentials(req);
    const aborted = deferred(res);
    const query = v.safeParse(GroupsQuery, Object.fromEntries(creds.query));
    if (!query.success) return sendJson(res, 400, { error: "bad_request", message: query.issues[0].message }, aborted);
    void (async () => {
      try {
        const who = await deps.identity.identify(creds);
        if (!who.ok) return answer.refused(res, aborted, who);
        if (who.user === null) return sendJson(res, 400, { error: "bad_request", message: "user is required (?user= in open dev mode)" }, aborted);
        sendJson(res, 200, await deps.reads.groups(who.user, query.output), aborted);
      } catch (err) {
        answer.failed(res, aborted, err);
      }
    })();
  });

  app.get("/api/groups/:group/members", (res, req) => {
    const group = groupParam(req.getParameter(0) ?? "");
    const creds = credentials(req, group ?? "");
    const aborted = deferred(res);
    if (group === null) return sendJson(res, 400, { error: "bad_request", message: "invalid group name" }, aborted);
    const query = v.safeParse(MembersQuery, Object.fromEntries(creds.query));
    if (!query.success) return sendJson(res, 400, { error: "bad_request", message: query.issues[0].message }, aborted);
    void (async () => {
      try {
        const who = await deps.identity.identify(creds);
        if (!who.ok) return answer.refused(res, aborted, who);
        sendJson(res, 200, await deps.reads.members(group, query.output), aborted);
      } catch (err) {
        answer.failed(res, aborted, err);
      }
    })();
  });
}
