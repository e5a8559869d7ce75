// One server-API route, declared once: the table in routes.ts registers each on the uWS app and
// the OpenAPI document (openapi.ts) is generated from the same declarations, so the two cannot
// drift. The runner does what every route shares: the API key, the path, query and body schemas,
// the body's byte budget, aborted requests, and errors as `{code, message}` with their status.
import { performance } from "node:perf_hooks";
import * as v from "valibot";
import type { ByteBudget } from "../../chat/budget.ts";
import { clientError } from "../../chat/store-guard.ts";
import { UPLOAD_FRAME_BYTES, type UploadBudget } from "../../gateway/upload-budget.ts";
import { ChatError } from "../../protocol/index.ts";
import type { HttpRequest, HttpResponse, TemplatedApp } from "../../uws/uws.ts";
import { send, type Status } from "../../uws/respond.ts";
import { Aborted, readBody } from "./body.ts";
import type { ApiKeys } from "./keys.ts";
import { ERROR_STATUS, type HttpErrorCode } from "./schemas.ts";

type Schema = v.GenericSchema<unknown, unknown>;
type ObjectSchema = v.ObjectSchema<v.ObjectEntries, undefined>;

export interface RouteSpec<P extends Record<string, Schema>, Q extends ObjectSchema | undefined, B extends Schema | undefined> {
  method: "get" | "post" | "del";
  /** uWS pattern: `/api/server/groups/:group/messages`. */
  path: string;
  summary: string;
  params: P;
  query?: Q;
  body?: B;
  /** Success status and the schema of its body. */
  answer: { status: 200 | 202; schema: Schema; description: string };
  /** Error codes this route may answer besides `unauthorized`, `bad_request`, `unavailable` and `internal`. */
  errors: HttpErrorCode[];
  handle(input: {
    params: { [K in keyof P]: v.InferOutput<P[K]> };
    query: Q extends ObjectSchema ? v.InferOutput<Q> : undefined;
    body: B extends Schema ? v.InferOutput<B> : undefined;
  }): Promise<unknown>;
}

/** A route of any shape, for the table (each entry was type-checked by `route`). */
export type AnyRoute = RouteSpec<any, any, any>;

export const route = <P extends Record<string, Schema>, Q extends ObjectSchema | undefined = undefined, B extends Schema | undefined = undefined>(
  spec: RouteSpec<P, Q, B>,
): RouteSpec<P, Q, B> => spec;

/** uWS `:name` segments in order. */
export const paramNames = (path: string) => [...path.matchAll(/:(\w+)/g)].map((m) => m[1]!);

export class ApiError extends Error {
  constructor(
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function describe(where: string, issues: v.BaseIssue<unknown>[]): string {
  const issue = issues[0]!;
  const path = issue.path?.map((p) => String(p.key)).join(".");
  return `${where}${path ? ` ${path}` : ""}: ${issue.message}`;
}

function parse<S extends Schema>(schema: S, value: unknown, where: string): v.InferOutput<S> {
  const r = v.safeParse(schema, value);
  if (!r.success) throw new ApiError("bad_request", describe(where, r.issues));
  return r.output;
}

export interface RunnerDeps {
  keys: ApiKeys;
  maxBodyBytes: number;
  /** Request bodies being read or handled count here (MAX_NODE_BUFFER_BYTES). */
  budget: ByteBudget;
  /** A body of 64 KiB or more waits its turn under the node's upload byte rate, as an upload frame does. */
  uploads: UploadBudget;
  /** Bytes of an upload handed to the service (chat_upload_bytes_total). */
  uploaded(bytes: number): void;
  onError(err: unknown, route: string): void;
  /** Counts every answer by route and status, and limit hits by name. */
  count(route: string, status: number, limit?: string): void;
}

function answer(res: HttpResponse, aborted: () => boolean, status: number, body: unknown): void {
  send(res, status as Status, JSON.stringify(body), { "Content-Type": "application/json", "Cache-Control": "no-store" }, aborted);
}

export function registerRoute(app: TemplatedApp, spec: AnyRoute, deps: RunnerDeps): void {
  const names = paramNames(spec.path);
  app[spec.method](spec.path, (res: HttpResponse, req: HttpRequest) => {
    // Everything from `req` is read now: uWS frees it when this callback returns.
    const authorization = req.getHeader("authorization");
    const contentLength = req.getHeader("content-length");
    const rawParams = names.map((_, i) => req.getParameter(i) ?? "");
    const rawQuery = req.getQuery() ?? "";
    const reader = spec.method === "post" ? readBody(res, deps.maxBodyBytes, contentLength, deps.budget) : null;
    let aborted = false;
    if (!reader) res.onAborted(() => (aborted = true));
    const isAborted = () => (reader ? reader.aborted() : aborted);
    const fail = (err: unknown) => {
      if (err instanceof Aborted) return;
      let code: HttpErrorCode = "internal";
      let message = "internal error";
      let limit: string | undefined;
      const known = err instanceof ApiError ? err : clientError(err);
      if (known) {
        ({ code, message } = known);
        if (known instanceof ChatError) limit = known.limit ?? (code === "too_large" ? "body_length" : undefined);
      } else deps.onError(err, spec.path);
      const status = ERROR_STATUS[code];
      deps.count(spec.path, status, limit);
      answer(res, isAborted, status, { code, message });
    };
    /** Bytes of this request's body taken from the upload budget, given back once it is answered. */
    let upload = 0;
    void (async () => {
      if (!deps.keys.allows(authorization)) throw new ApiError("unauthorized", "a valid API key is required: Authorization: Bearer <key>");
      const params: Record<string, unknown> = {};
      names.forEach((name, i) => {
        let decoded: string;
        try {
          decoded = decodeURIComponent(rawParams[i]!);
        } catch {
          throw new ApiError("bad_request", `path ${name}: invalid percent-encoding`);
        }
        params[name] = parse(spec.params[name]!, decoded, `path ${name}`);
      });
      const query = spec.query ? parse(spec.query, Object.fromEntries(new URLSearchParams(rawQuery)), "query") : undefined;
      let body: unknown;
      if (spec.body && reader) {
        const bytes = await reader.body;
        if (bytes.byteLength >= UPLOAD_FRAME_BYTES) {
          await uploadTurn(deps, bytes.byteLength);
          upload = bytes.byteLength;
        }
        let json: unknown;
        try {
          json = JSON.parse(bytes.toString("utf8"));
        } catch {
          throw new ApiError("bad_request", "body is not valid JSON");
        }
        if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ApiError("bad_request", "body must be a JSON object");
        body = parse(spec.body, json, "body");
      }
      const out = await spec.handle({ params, query, body } as never);
      deps.count(spec.path, spec.answer.status);
      answer(res, isAborted, spec.answer.status, out);
    })()
      .catch(fail)
      .finally(() => {
        reader?.release();
        if (upload > 0) deps.uploads.done(upload);
      });
  });
}

/**
 * Waits for a body's turn under the node's upload byte rate; past UPLOAD_MAX_WAIT_MS, or past the
 * upload bytes in flight, rate_limited (429). Once it resolves, the caller owes `uploads.done`.
 */
async function uploadTurn(deps: RunnerDeps, bytes: number): Promise<void> {
  const now = performance.now();
  const turn = deps.uploads.take(bytes, null, now);
  if ("refused" in turn) {
    const mib = (n: number) => Math.round((n / (1024 * 1024)) * 10) / 10;
    if (turn.refused === "upload_inflight") throw new ChatError("rate_limited", `this node is handling ${mib(deps.uploads.maxInflightBytes)} MiB of uploads at once; retry shortly`, turn.refused);
    throw new ChatError("rate_limited", `uploads past this node's budget of ${mib(deps.uploads.node.bytesPerSecond)} MiB/s; retry in ${Math.ceil(turn.waitMs / 1000)} s`, turn.refused);
  }
  if (turn.at > now) await new Promise((resolve) => setTimeout(resolve, turn.at - now));
  deps.uploaded(bytes);
}
