// GET /files/<id>: an attachment's bytes, streamed from the store a chunk at a time with
// backpressure (stream.ts), under the node's HTTP budget (budget.ts): a download holds one
// chunk however slowly its client reads, and past the budget a download is refused with 503.
import type { HttpRequest, HttpResponse, TemplatedApp } from "uWebSockets.js";
import * as v from "valibot";
import type { ChatService } from "../chat/service.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { EntityId } from "../protocol/index.ts";
import type { HttpBudget } from "./budget.ts";
import { sendJson, STATUS } from "../uws/respond.ts";
import { PendingResponse, SourceGone, streamAnswer } from "../uws/stream.ts";

export interface FileRouteDeps {
  service: Pick<ChatService, "attachmentInfo" | "readAttachment">;
  budget: HttpBudget;
  metrics: Metrics;
  /**
   * Reads the caller's credentials from the request (now: uWS requests do not outlive the
   * handler) and returns the check to run later: true when the caller may read files of
   * `group` (any group when absent), else false once the refusal has been sent.
   */
  authorize(req: HttpRequest, res: HttpResponse, aborted: () => boolean): (group?: string) => Promise<boolean>;
  failed(res: HttpResponse, aborted: () => boolean, err: unknown): void;
}

/** Raster images are safe to show inline; everything else (SVG included: it can carry script) downloads. */
const INLINE_TYPES = /^image\/(?:png|jpeg|gif|webp|avif|bmp)$/;

/** A Content-Disposition that no file name can break out of. */
export function contentDisposition(kind: "inline" | "attachment", name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\;]/g, "_");
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

const notFound = { error: "not_found", message: "no such file" };

export function registerFileRoute(app: TemplatedApp, deps: FileRouteDeps): void {
  const { service, budget, metrics } = deps;
  app.get("/files/:id", (res, req) => {
    const id = req.getParameter(0) ?? "";
    const pending = new PendingResponse(res);
    const aborted = pending.isAborted;
    if (!v.is(EntityId, id)) return sendJson(res, 404, notFound, aborted);
    const allowed = deps.authorize(req, res, aborted);
    void (async () => {
      // Authenticate before the lookup, so that without a valid token nothing tells whether the file exists.
      if (!(await allowed())) return;
      const file = await service.attachmentInfo(id);
      if (!file) return sendJson(res, 404, notFound, aborted);
      // Then the file's group against the token's `groups` claim.
      if (!(await allowed(file.groupName))) return;
      const chunk = Math.min(budget.opts.fileChunkBytes, Math.max(file.size, 1));
      const held = budget.reserve(chunk, true);
      if (typeof held === "string") {
        metrics.limitHits.inc({ limit: held });
        metrics.errors.inc({ code: "unavailable" });
        return sendJson(res, 503, { error: "unavailable", message: "too many downloads on this node; retry shortly" }, aborted);
      }
      try {
        const inline = INLINE_TYPES.test(file.contentType);
        const headers = {
          "Content-Type": file.contentType,
          "X-Content-Type-Options": "nosniff",
          "Content-Disposition": contentDisposition(inline ? "inline" : "attachment", file.name),
          "Content-Security-Policy": "default-src 'none'; sandbox",
          "Cache-Control": "private, max-age=31536000, immutable",
        };
        const source = { size: file.size, read: (offset: number, length: number) => service.readAttachment(id, offset, length) };
        await streamAnswer(pending, STATUS[200], headers, source, chunk);
      } catch (err) {
        if (err instanceof SourceGone) return sendJson(res, 404, notFound, aborted);
        throw err;
      } finally {
        held.release();
      }
    })().catch((err) => deps.failed(res, aborted, err));
  });
}
