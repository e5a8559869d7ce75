// The server API (`/api/server/`): what an application's backend may do without a WebSocket.
// Every route needs `Authorization: Bearer <one of SERVER_API_KEYS>`; without SERVER_API_KEYS
// none is registered (404). Each route goes through the same service calls as the WebSocket
// frames, so a publish is stored, broadcast and de-duplicated exactly like a create.
import type { ControlChannel } from "../../bus/control.ts";
import type { ChatService } from "../../chat/service.ts";
import type { WebhookOutbox } from "../../store/outbox.ts";
import { CLOSE_DISCONNECTED, ChatError } from "../../protocol/index.ts";
import type { TemplatedApp } from "../../uws/uws.ts";
import { withDeadline } from "../../deadline.ts";
import { send } from "../../uws/respond.ts";
import { ApiKeys } from "./keys.ts";
import { buildOpenApi } from "./openapi.ts";
import { registerRoute, route, type AnyRoute, type RunnerDeps } from "./route.ts";
import {
  DeadLettersAnswer,
  DeadLettersQuery,
  DeleteQuery,
  PresenceAnswer,
  RequeueAnswer,
  RequeueRequest,
  DisconnectAnswer,
  GroupParam,
  HistoryAnswer,
  HistoryQuery,
  MessageIdParam,
  PublishRequest,
  StoredAnswer,
  UserParam,
} from "./schemas.ts";

export interface ServerApiDeps {
  service: ChatService;
  control: ControlChannel;
  busUp: () => boolean;
  /** The webhook outbox, when webhooks are configured (its dead letters are listed and requeued here). */
  outbox: WebhookOutbox | null;
}

const ack = (out: Awaited<ReturnType<ChatService["create"]>>) => {
  if (out.kind !== "ack" || out.message_id === undefined || out.seq === undefined) throw new Error("a stored operation answered without message_id and seq");
  return { message_id: out.message_id, seq: out.seq };
};

/** Every route of the server API; the OpenAPI document is generated from this list. */
export function serverApiRoutes(deps: ServerApiDeps): AnyRoute[] {
  const { service, outbox } = deps;
  const webhookRoutes = !outbox ? [] : [
    route({
      method: "get",
      path: "/api/server/webhooks/dead-letters",
      summary: "Webhook events that failed WEBHOOK_MAX_ATTEMPTS times and are no longer retried, oldest group and seq first",
      params: {},
      query: DeadLettersQuery,
      answer: { status: 200, schema: DeadLettersAnswer, description: "the dead letters" },
      errors: [],
      handle: async ({ query }) => ({
        dead_letters: (await outbox.deadLetters(query.limit)).map((d) => ({ group: d.group, seq: d.seq, attempts: d.attempts, last_error: d.lastError, created: d.createdAt.toISOString() })),
      }),
    }),
    route({
      method: "post",
      path: "/api/server/webhooks/dead-letters/requeue",
      summary: "Deliver dead letters again (all, one group's, or one event's): they are retried from scratch, after any later events of their group already delivered",
      params: {},
      body: RequeueRequest,
      answer: { status: 200, schema: RequeueAnswer, description: "how many were requeued" },
      errors: [],
      handle: async ({ body }) => ({ requeued: await outbox.requeue({ group: body.group, seq: body.seq }) }),
    }),
  ];
  return [
    ...webhookRoutes,
    route({
      method: "post",
      path: "/api/server/groups/:group/messages",
      summary: "Publish a message as a user: stored, broadcast and answered like a WebSocket create (idempotent by request_id)",
      params: { group: GroupParam },
      body: PublishRequest,
      answer: { status: 200, schema: StoredAnswer, description: "stored (or, for a retry with the same request_id, the original)" },
      errors: ["too_large", "rate_limited"],
      handle: async ({ params, body }) => {
        const { request_id, ...frame } = body;
        return ack(await service.create({ group: params.group, user: null }, frame, request_id));
      },
    }),
    route({
      method: "del",
      path: "/api/server/groups/:group/messages/:id",
      summary: "Delete any author's message (moderation); the delete event names `user` as who deleted it",
      params: { group: GroupParam, id: MessageIdParam },
      query: DeleteQuery,
      answer: { status: 200, schema: StoredAnswer, description: "deleted" },
      errors: ["not_found"],
      handle: async ({ params, query }) => ack(await service.moderate({ group: params.group, by: query.user, messageId: params.id })),
    }),
    route({
      method: "get",
      path: "/api/server/groups/:group/messages",
      summary: "History: the `limit` messages before `before` (newest when absent), oldest first, in their current state",
      params: { group: GroupParam },
      query: HistoryQuery,
      answer: { status: 200, schema: HistoryAnswer, description: "a page of history" },
      errors: ["not_found"],
      handle: async ({ params, query }) => {
        const out = await service.history({ group: params.group, user: null }, { before: query.before, limit: query.limit });
        return { messages: out.messages, has_more: out.has_more };
      },
    }),
    route({
      method: "get",
      path: "/api/server/groups/:group/presence",
      summary: "Who is online in the group on any node: `count` is exact, `users` the longest present first (at most 100)",
      params: { group: GroupParam },
      answer: { status: 200, schema: PresenceAnswer, description: "the group's presence" },
      errors: [],
      handle: async ({ params }) => service.presenceOf(params.group),
    }),
    route({
      method: "post",
      path: "/api/server/users/:user/disconnect",
      summary: `Close every socket of the user on every node (close code ${CLOSE_DISCONNECTED}); sent over the bus, at most once`,
      params: { user: UserParam },
      answer: { status: 202, schema: DisconnectAnswer, description: "published to every node" },
      errors: [],
      handle: async ({ params }) => {
        if (!deps.busUp()) throw new ChatError("unavailable", "event bus unavailable, nothing was sent");
        // A connection that died unnoticed queues the publish: answer unavailable rather than hang.
        await withDeadline(deps.control.publish({ command: "disconnect", user: params.user }), 2_000, () => new ChatError("unavailable", "event bus did not accept the command within 2000 ms"));
        return { user: params.user, published: true as const };
      },
    }),
  ];
}

export interface ServerApiOptions extends Omit<RunnerDeps, "keys"> {
  keys: readonly string[];
}

/** Registers the routes and `GET /api/server/openapi.json` (no key needed: it holds no data). */
export function registerServerApi(app: TemplatedApp, deps: ServerApiDeps, opts: ServerApiOptions): AnyRoute[] {
  const routes = serverApiRoutes(deps);
  const runner: RunnerDeps = { ...opts, keys: new ApiKeys(opts.keys) };
  for (const r of routes) registerRoute(app, r, runner);
  const doc = JSON.stringify(buildOpenApi(routes));
  app.get("/api/server/openapi.json", (res) => send(res, 200, doc, { "Content-Type": "application/json" }));
  // Anything else under /api/server/ is a JSON 404 in the API's own error shape.
  app.any("/api/server/*", (res) => send(res, 404, JSON.stringify({ code: "not_found", message: "no such route" }), { "Content-Type": "application/json" }));
  return routes;
}
