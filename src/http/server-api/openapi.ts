// The server API's OpenAPI 3.1 document, generated from the route declarations and their valibot
// schemas by @valibot/to-json-schema (JSON Schema 2020-12, which OpenAPI 3.1 uses): nothing in it
// is written by hand, so it says what the code checks. Requests are described as they are sent
// (typeMode "input": a query's `limit` is a string), answers as they come back.
import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import { ErrorAnswer, ERROR_STATUS, type HttpErrorCode } from "./schemas.ts";
import { paramNames, type AnyRoute } from "./route.ts";

type Json = Record<string, unknown>;

const schemaOf = (s: v.GenericSchema, typeMode: "input" | "output"): Json => {
  const { $schema: _, ...rest } = toJsonSchema(s, { target: "draft-2020-12", errorMode: "ignore", typeMode }) as Json;
  return rest;
};

/** `/api/server/groups/:group/messages` → `/api/server/groups/{group}/messages` */
export const openApiPath = (path: string) => path.replace(/:(\w+)/g, "{$1}");

const COMMON_ERRORS: HttpErrorCode[] = ["bad_request", "unauthorized", "internal", "unavailable"];

export function buildOpenApi(routes: AnyRoute[]): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const parameters: Json[] = paramNames(r.path).map((name) => ({ name, in: "path", required: true, schema: schemaOf(r.params[name], "input") }));
    if (r.query) {
      const q = schemaOf(r.query, "input") as { properties: Record<string, Json>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties)) parameters.push({ name, in: "query", required: q.required?.includes(name) ?? false, schema });
    }
    const responses: Json = {
      [String(r.answer.status)]: { description: r.answer.description, content: { "application/json": { schema: schemaOf(r.answer.schema, "output") } } },
    };
    for (const code of [...COMMON_ERRORS, ...r.errors]) {
      const status = String(ERROR_STATUS[code]);
      const entry = (responses[status] ??= { description: "", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } }) as Json;
      entry.description = [entry.description, code].filter(Boolean).join(", ");
    }
    const op: Json = { summary: r.summary, operationId: `${r.method}${openApiPath(r.path).replace(/[^A-Za-z]+(\w)?/g, (_, c: string | undefined) => (c ?? "").toUpperCase())}`, parameters, responses };
    if (r.body) op.requestBody = { required: true, content: { "application/json": { schema: schemaOf(r.body, "input") } } };
    const method = r.method === "del" ? "delete" : r.method;
    (paths[openApiPath(r.path)] ??= {})[method] = op;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "chatroom server API",
      version: "1",
      description: "For an application's backends. Every operation needs `Authorization: Bearer <API key>` (SERVER_API_KEYS). Errors are `{code, message}` with the WebSocket protocol's codes (plus `unauthorized`) and the matching HTTP status.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    security: [{ apiKey: [] }],
    paths,
    components: {
      securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "one of the keys in SERVER_API_KEYS" } },
      schemas: { Error: schemaOf(ErrorAnswer, "output") },
    },
  };
}
