// The node's HTTP surface: probes, metrics, history and attachments. Anything else is 404.
import * as v from "valibot";
import type { ChatService } from "../chat/service.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { ChatError, EntityId, HISTORY_MAX_LIMIT, HistoryLimit } from "../protocol/index.ts";
import { refusalCode, type IdentityProvider, type IdentityResult } from "../gateway/identity.ts";
import { groupParam } from "../gateway/params.ts";
import type { HttpRequest, HttpResponse, TemplatedApp } from "../gateway/uws.ts";
import { deferred, send, sendJson, type Status } from "./respond.ts";
import { registerPageRoutes } from "./page.ts";

export interface HttpDeps {
  service: ChatService;
  metrics: Metrics;
  identity: IdentityProvider;
  /** Whether the node should receive traffic, with the reasons when not. */
  readiness: () => Promise<{ ready: boolean; checks: Record<string, boolean> }>;
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

/** Raster images are safe to show inline; everything else (SVG included: it can carry script) downloads. */
const INLINE_TYPES = /^image\/(?:png|jpeg|gif|webp|avif|bmp)$/;

/** A Content-Disposition that no file name can break out of. */
export function contentDisposition(kind: "inline" | "attachment", name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\;]/g, "_");
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

function errorStatus(err: unknown): { status: Status; code: string; message: string } {
  if (err instanceof ChatError) return { status: CODE_STATUS[err.code] ?? 500, code: err.code, message: err.message };
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

  app.get("/healthz", (res) => send(res, 200, "ok", { "Content-Type": "text/plain" }));

  app.get("/readyz", (res) => {
    const aborted = deferred(res);
    void deps.readiness().then((r) => sendJson(res, r.ready ? 200 : 503, r, aborted));
  });

  app.get("/metrics", (res) => {
    const aborted = deferred(res);
    metrics.registry
      .metrics()
      .then((text) => send(res, 200, text, { "Content-Type": metrics.registry.contentType }, aborted))
      .catch((err) => failed(res, aborted, err));
  });

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
        if (out.kind !== "history") throw new Error("history answered with an ack");
        sendJson(res, 200, { messages: out.messages, has_more: out.has_more }, aborted);
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

  app.get("/files/:id", (res, req) => {
    const id = req.getParameter(0) ?? "";
    const aborted = deferred(res);
    if (!v.is(EntityId, id)) return sendJson(res, 404, { error: "not_found", message: "no such file" }, aborted);
    const creds = credentials(req);
    void (async () => {
      try {
        // Authenticate before the lookup, so that without a valid token nothing tells whether the file exists.
        const caller = await identity.identify(creds);
        if (!caller.ok) return refused(res, aborted, caller);
        const file = await service.attachment(id);
        if (!file) return sendJson(res, 404, { error: "not_found", message: "no such file" }, aborted);
        // Then the file's group against the token's `groups` claim.
        const who = await identity.identify({ ...creds, group: file.groupName });
        if (!who.ok) return refused(res, aborted, who);
        const inline = INLINE_TYPES.test(file.contentType);
        send(res, 200, file.data, {
          "Content-Type": file.contentType,
          "X-Content-Type-Options": "nosniff",
          "Content-Disposition": contentDisposition(inline ? "inline" : "attachment", file.name),
          "Content-Security-Policy": "default-src 'none'; sandbox",
          "Cache-Control": "private, max-age=31536000, immutable",
        }, aborted);
      } catch (err) {
        failed(res, aborted, err);
      }
    })();
  });

  registerPageRoutes(app, deps.log); // GET / and /assets/*: the chat page

  app.any("/*", (res) => sendJson(res, 404, { error: "not_found", message: "no such route" }));
}
