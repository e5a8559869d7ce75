// From a raw text frame to the one frame its sender gets back (ack, history, error, or nothing
// when a successful frame carried no request_id). Parsing and validation happen here, once.
import * as v from "valibot";
import type { Metrics } from "../metrics/metrics.ts";
import { operationLabel } from "../metrics/metrics.ts";
import { ChatError, ClientFrames, Envelope, isOperation, type ErrorCode, type Operation } from "../protocol/index.ts";
import { ackFrame, errorFrame, historyFrame, presenceFrame } from "./events.ts";
import { isUnavailable } from "./store-guard.ts";
import type { Session } from "./identity.ts";
import type { ChatService, Outcome } from "./service.ts";

type Handler = (s: Session, frame: never, requestId: string | undefined) => Promise<Outcome>;

export interface DispatchLog {
  error(obj: object, msg: string): void;
}


function describe(issues: v.BaseIssue<unknown>[]): string {
  const issue = issues[0]!;
  const path = issue.path?.map((p) => String(p.key)).join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}

export class Dispatcher {
  private readonly handlers: Record<Operation, Handler>;

  constructor(
    service: ChatService,
    private readonly metrics: Metrics,
    private readonly log: DispatchLog,
  ) {
    this.handlers = {
      create: (s, f, rid) => service.create(s, f, rid),
      update: (s, f, rid) => service.update(s, f, rid),
      delete: (s, f, rid) => service.delete(s, f, rid),
      reply: (s, f, rid) => service.reply(s, f, rid),
      seen: (s, f) => service.seen(s, f),
      typing: (s, f) => service.typing(s, f),
      history: (s, f) => service.history(s, f),
      presence: (s) => service.presence(s),
    };
  }

  /** Never throws: every failure becomes an error frame for the sender. */
  async dispatch(session: Session, text: string): Promise<string | null> {
    let requestId: string | undefined;
    let operation: unknown;
    try {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        throw new ChatError("bad_request", "frame is not valid JSON");
      }
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ChatError("bad_request", "frame must be a JSON object");
      operation = (raw as { operation?: unknown }).operation;
      this.metrics.framesReceived.inc({ operation: operationLabel(operation) });
      const frameObj = raw as { request_id?: unknown; operation?: unknown };
      // request_id first, so that every later error can echo it.
      const rid = v.safeParse(Envelope.request_id, frameObj.request_id);
      if (!rid.success) throw new ChatError("bad_request", `request_id: ${rid.issues[0].message}`);
      requestId = rid.output;
      const opParsed = v.safeParse(Envelope.operation, operation);
      if (!opParsed.success) throw new ChatError("bad_request", opParsed.issues[0].message);
      const op = opParsed.output;
      if (!isOperation(op)) throw new ChatError("unknown_operation", `unknown operation ${JSON.stringify(op.slice(0, 32))}`);
      const frame = v.safeParse(ClientFrames[op], raw);
      if (!frame.success) throw new ChatError("bad_request", describe(frame.issues));
      const outcome = await this.handlers[op](session, frame.output as never, requestId);
      if (outcome.kind === "history") return historyFrame(session.group, outcome.messages, outcome.has_more, requestId);
      if (outcome.kind === "presence") return presenceFrame(outcome.answer, requestId);
      if (requestId === undefined) return null;
      const { kind: _, ...fields } = outcome;
      return ackFrame(session.group, requestId, fields);
    } catch (err) {
      let code: ErrorCode = "internal";
      let message = "internal error";
      if (err instanceof ChatError) {
        ({ code, message } = err);
        // The service's body check is the one too_large that carries no tag.
        const limit = err.limit ?? (code === "too_large" ? "body_length" : undefined);
        if (limit) this.metrics.limitHits.inc({ limit });
      } else if (isUnavailable(err)) {
        code = "unavailable";
        message = "storage is unavailable, try again";
      } else {
        this.log.error({ err, group: session.group, request_id: requestId, operation: operationLabel(operation) }, "frame failed");
      }
      this.metrics.errors.inc({ code });
      return errorFrame(code, message, requestId, session.group);
    }
  }
}
