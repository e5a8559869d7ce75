// From a raw text frame to the one frame its sender gets back (ack, history, error, or nothing
// when a successful frame carried no request_id). Parsing and validation happen here, once.
import * as v from "valibot";
import type { Metrics } from "../metrics/metrics.ts";
import { operationLabel } from "../metrics/metrics.ts";
import { ChatError, ClientFrames, Envelope, GroupName, isOperation, type ClientFrame, type ErrorCode, type Operation } from "../protocol/index.ts";
import { ackFrame, errorFrame, groupsFrame, historyFrame, presenceFrame } from "./events.ts";
import { clientError } from "./store-guard.ts";
import { actingUser, type Session } from "./identity.ts";
import { isCleanTyping, SENT, type CleanTyping } from "./typing-fast.ts";
import type { ReadState } from "./read-state.ts";
import type { Multiplex } from "./multiplex.ts";
import type { ChatService, Outcome } from "./service.ts";

type Handler = (s: Session, frame: never, requestId: string | undefined) => Promise<Outcome>;

export interface DispatchLog {
  error(obj: object, msg: string): void;
}


/** A successful frame without request_id gets no answer. */
const noAnswer = (): null => null;

/**
 * A frame's answer: the frame to send back (null: none), at once when it was handled inside the
 * call (typing on the in-process bus), else once it has been.
 */
export type Answer = string | null | Promise<string | null>;

/** The typing fast path left the frame to the generic path. */
const NOT_TAKEN = Symbol("not taken");

/** What dispatch hands on for a frame that is not JSON. */
const NOT_JSON = Symbol("not JSON");

function describe(issues: v.BaseIssue<unknown>[]): string {
  const issue = issues[0]!;
  const path = issue.path?.map((p) => String(p.key)).join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}

export class Dispatcher {
  private readonly handlers: Record<Operation, Handler>;

  constructor(
    private readonly service: ChatService,
    private readonly metrics: Metrics,
    private readonly log: DispatchLog,
    reads: ReadState,
  ) {
    // A stored operation makes its user a member of the group (after it succeeded).
    const member = <F extends { user?: string }>(run: (s: Session, f: F, rid: string | undefined) => Promise<Outcome>) =>
      async (s: Session, f: F, rid: string | undefined) => {
        const outcome = await run(s, f, rid);
        reads.touch(s.group, actingUser(s, f.user));
        return outcome;
      };
    this.handlers = {
      create: member((s, f: ClientFrame<"create">, rid) => service.create(s, f, rid)),
      update: member((s, f: ClientFrame<"update">, rid) => service.update(s, f, rid)),
      delete: member((s, f: ClientFrame<"delete">, rid) => service.delete(s, f, rid)),
      reply: member((s, f: ClientFrame<"reply">, rid) => service.reply(s, f, rid)),
      // A seen moves the reader's marker to the message (and makes them a member).
      seen: async (s, f: ClientFrame<"seen">) => {
        const outcome = await service.seen(s, f);
        await reads.seen(s, f);
        return outcome;
      },
      typing: (s, f) => service.typing(s, f),
      history: (s, f) => service.history(s, f),
      read: (s, f) => reads.read(s, f),
      leave: (s, f) => reads.leave(s, f),
      groups: (s, f) => reads.groupsFrame(s, f),
      presence: (s) => service.presence(s),
      // Answered in dispatch() for a multiplexed socket; a per-group socket follows its one group.
      subscribe: () => Promise.reject(new ChatError("bad_request", "subscribe is only for /ws/ sockets; this socket follows its one group")),
      unsubscribe: () => Promise.reject(new ChatError("bad_request", "unsubscribe is only for /ws/ sockets; this socket follows its one group")),
    };
    this.reads = reads;
  }

  private readonly reads: ReadState;

  /**
   * On a multiplexed socket every frame names its `group` (but `groups`, which is about none):
   * a frame for a group the socket does not follow is `bad_request`, except `subscribe`, and
   * `leave`, which ends a membership whether or not the socket follows the group (and unsubscribes).
   */
  private async multiplexed(mux: Multiplex, session: Session, op: string, frame: unknown): Promise<Outcome | null> {
    if (op === "groups") return null; // about no one group
    if (op === "subscribe") {
      const { since, presence } = frame as ClientFrame<"subscribe">;
      const { seq, start } = await mux.subscribe(session.group, since ?? null, presence ?? false);
      // After the ack has gone out (the caller sends it when this resolves): ack, then replay.
      setImmediate(start);
      return { kind: "ack", seq };
    }
    if (op === "unsubscribe") {
      if (!mux.unsubscribe(session.group)) throw new ChatError("bad_request", `not subscribed to group ${session.group}`);
      return { kind: "ack" };
    }
    if (op === "leave") {
      const outcome = await this.reads.leave(session, frame as ClientFrame<"leave">);
      mux.unsubscribe(session.group);
      return outcome;
    }
    if (!mux.has(session.group)) throw new ChatError("bad_request", `not subscribed to group ${session.group}: subscribe first`);
    return null;
  }

  /**
   * Never throws: every failure becomes an error frame for the sender. A per-group socket's
   * session names its group; a multiplexed socket (`mux`) passes a session whose group is ""
   * and each frame names its own.
   */
  dispatch(session: Session, text: string, mux?: Multiplex): Answer {
    // Parsed here, before anything waits, so the text is not kept while the frame is handled: a
    // file at the cap is a 7 MB text, held otherwise until its store write is over.
    let raw: unknown = NOT_JSON;
    try {
      raw = JSON.parse(text);
    } catch {
      // answered below
    }
    if (mux === undefined && isCleanTyping(raw)) {
      const answer = this.typing(session, raw);
      if (answer !== NOT_TAKEN) return answer;
    }
    return this.handle(session, raw, mux);
  }

  /**
   * Typing's fast path (typing-fast.ts): a frame the schemas accept as it is, on a per-group
   * socket, published at once. NOT_TAKEN for every case the service answers with an error (a
   * `user` that is not the connection's, or none in open dev mode; the bus down): the generic path
   * answers those, as it would have. On the in-process bus, which delivers inside
   * the call, the answer is there at once (no promise).
   */
  private typing(session: Session, frame: CleanTyping): Answer | typeof NOT_TAKEN {
    const user = session.user ?? frame.user;
    if (user === undefined || (frame.user !== undefined && frame.user !== user)) return NOT_TAKEN;
    const published = this.service.typingNow(session.group, user, frame.typing_status);
    if (published === null) return NOT_TAKEN;
    this.metrics.framesReceived.add("typing");
    const rid = frame.request_id;
    if (published === SENT) return rid === undefined ? null : ackFrame(session.group, rid, {});
    return published.then(
      rid === undefined ? noAnswer : () => ackFrame(session.group, rid, {}),
      (err: unknown) => this.failed(err, session, rid, "typing"),
    );
  }

  private async handle(session: Session, raw: unknown, mux?: Multiplex): Promise<string | null> {
    let requestId: string | undefined;
    let operation: unknown;
    try {
      if (raw === NOT_JSON) throw new ChatError("bad_request", "frame is not valid JSON");
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ChatError("bad_request", "frame must be a JSON object");
      operation = (raw as { operation?: unknown }).operation;
      this.metrics.framesReceived.add(operationLabel(operation));
      const frameObj = raw as { request_id?: unknown; operation?: unknown };
      // request_id first, so that every later error can echo it.
      const rid = v.safeParse(Envelope.request_id, frameObj.request_id);
      if (!rid.success) throw new ChatError("bad_request", `request_id: ${rid.issues[0].message}`);
      requestId = rid.output;
      const opParsed = v.safeParse(Envelope.operation, operation);
      if (!opParsed.success) throw new ChatError("bad_request", opParsed.issues[0].message);
      const op = opParsed.output;
      if (!isOperation(op)) throw new ChatError("unknown_operation", `unknown operation ${JSON.stringify(op.slice(0, 32))}`);
      if (mux && op !== "groups") {
        const group = v.safeParse(GroupName, (raw as { group?: unknown }).group);
        if (!group.success) throw new ChatError("bad_request", `group: ${(raw as { group?: unknown }).group === undefined ? "every frame on /ws/ names its group" : group.issues[0].message}`);
        session = { ...session, group: group.output };
      }
      const frame = v.safeParse(ClientFrames[op], raw);
      if (!frame.success) throw new ChatError("bad_request", describe(frame.issues));
      const outcome = (mux && (await this.multiplexed(mux, session, op, frame.output))) || (await this.handlers[op](session, frame.output as never, requestId));
      if (outcome.kind === "history") return historyFrame(session.group, outcome.messages, outcome.has_more, requestId);
      if (outcome.kind === "groups") {
        const { kind: _, ...page } = outcome;
        return groupsFrame(page, requestId);
      }
      if (outcome.kind === "presence") return presenceFrame(outcome.answer, requestId);
      if (requestId === undefined) return null;
      const { kind: _, ...fields } = outcome;
      return ackFrame(session.group, requestId, fields);
    } catch (err) {
      return this.failed(err, session, requestId, operation);
    }
  }

  /** The error frame for a frame that failed (and its count). */
  private failed(err: unknown, session: Session, requestId: string | undefined, operation: unknown): string {
    let code: ErrorCode = "internal";
    let message = "internal error";
    const known = clientError(err);
    if (known) {
      ({ code, message } = known);
      // The service's body check is the one too_large that carries no tag.
      const limit = known.limit ?? (code === "too_large" ? "body_length" : undefined);
      if (limit) this.metrics.limitHits.inc({ limit });
    } else {
      this.log.error({ err, group: session.group, request_id: requestId, operation: operationLabel(operation) }, "frame failed");
    }
    this.metrics.errors.inc({ code });
    return errorFrame(code, message, requestId, session.group === "" ? undefined : session.group);
  }
}
