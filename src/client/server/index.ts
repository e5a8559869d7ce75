// A typed helper for an application's backends (Node): the server API (publish, moderate,
// history, disconnect, dead letters) and webhook verification. Not part of the browser SDK:
// it holds an API key and a webhook secret, which must never reach a browser.
//
//   const chat = new ChatServerClient({ url: "http://chat.internal:8000", apiKey: process.env.CHAT_API_KEY! });
//   await chat.publish("lobby", { user: "bot", type: "text", body: "deploy finished" });
//   // in the webhook receiver, with the raw body bytes:
//   const event = parseWebhook(process.env.CHAT_WEBHOOK_SECRET!, rawBody, req.headers["x-chatroom-signature"]);
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import * as v from "valibot";
import type { MessageView } from "../../protocol/index.ts";
import { WebhookEvent } from "../../protocol/webhook.ts";
import type { PublishRequest } from "../../http/server-api/schemas.ts";

export { DELIVERY_HEADER, SIGNATURE_HEADER, WebhookEvent } from "../../protocol/webhook.ts";

/** An error answer of the server API: `code` is the protocol's error code (or `unauthorized`), `status` the HTTP status. */
export class ServerApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ServerApiError";
  }
}

export interface ServerClientOptions {
  /** The node's (or load balancer's) base URL. */
  url: string;
  apiKey: string;
  /** Per request (default 10 s). */
  timeoutMs?: number;
  /** How many times a publish is sent when the answer is `unavailable` or the network fails (default 3); always with the same request_id. */
  attempts?: number;
  fetch?: typeof fetch;
}

export type Publish = Omit<PublishRequest, "request_id"> & { request_id?: string };

export class ChatServerClient {
  private readonly base: string;
  private readonly doFetch: typeof fetch;

  constructor(private readonly opts: ServerClientOptions) {
    this.base = opts.url.replace(/\/+$/, "");
    this.doFetch = opts.fetch ?? fetch;
  }

  /** Stores and broadcasts a message as `user`. Retried safely: a request_id is generated when none is given. */
  async publish(group: string, message: Publish): Promise<{ message_id: string; seq: number }> {
    const body = { ...message, request_id: message.request_id ?? randomUUID() };
    const attempts = this.opts.attempts ?? 3;
    for (let i = 1; ; i++) {
      try {
        return await this.call("POST", `/groups/${encodeURIComponent(group)}/messages`, body);
      } catch (err) {
        const retryable = !(err instanceof ServerApiError) || err.code === "unavailable";
        if (!retryable || i >= attempts) throw err;
        await new Promise((r) => setTimeout(r, 200 * 2 ** i));
      }
    }
  }

  /** Deletes any author's message; `by` is recorded as who deleted it (default `system`). */
  deleteMessage(group: string, messageId: string, by?: string): Promise<{ message_id: string; seq: number }> {
    const q = by === undefined ? "" : `?user=${encodeURIComponent(by)}`;
    return this.call("DELETE", `/groups/${encodeURIComponent(group)}/messages/${encodeURIComponent(messageId)}${q}`);
  }

  history(group: string, page: { before?: string; limit?: number } = {}): Promise<{ messages: MessageView[]; has_more: boolean }> {
    const q = new URLSearchParams();
    if (page.before !== undefined) q.set("before", page.before);
    if (page.limit !== undefined) q.set("limit", String(page.limit));
    return this.call("GET", `/groups/${encodeURIComponent(group)}/messages${q.size ? `?${q}` : ""}`);
  }

  /** Who is online in the group (count exact, at most 100 users listed). */
  presence(group: string): Promise<{ group: string; count: number; users: { user: string; since: string }[] }> {
    return this.call("GET", `/groups/${encodeURIComponent(group)}/presence`);
  }

  /** Closes the user's sockets on every node (close code 4010). */
  disconnect(user: string): Promise<{ user: string; published: true }> {
    return this.call("POST", `/users/${encodeURIComponent(user)}/disconnect`);
  }

  deadLetters(limit = 100): Promise<{ dead_letters: { group: string; seq: number; attempts: number; last_error: string | null; created: string }[] }> {
    return this.call("GET", `/webhooks/dead-letters?limit=${limit}`);
  }

  requeueDeadLetters(filter: { group?: string; seq?: number } = {}): Promise<{ requeued: number }> {
    return this.call("POST", "/webhooks/dead-letters/requeue", filter);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.doFetch(`${this.base}/api/server${path}`, {
      method,
      headers: { authorization: `Bearer ${this.opts.apiKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ServerApiError(res.status, res.status >= 500 ? "unavailable" : "bad_request", `HTTP ${res.status}: ${text.slice(0, 200)}`);
    }
    if (!res.ok) {
      const e = json as { code?: string; message?: string };
      throw new ServerApiError(res.status, e.code ?? "internal", e.message ?? `HTTP ${res.status}`);
    }
    return json as T;
  }
}

/**
 * Whether `signature` (the X-Chatroom-Signature header, `sha256=<hex>`) is the HMAC-SHA256 of
 * exactly these body bytes under `secret`. Constant time. Verify the raw body, before parsing it.
 */
export function verifyWebhookSignature(secret: string, body: string | Uint8Array, signature: string | string[] | null | undefined): boolean {
  if (typeof signature !== "string") return false;
  const m = /^sha256=([0-9a-f]{64})$/.exec(signature.trim());
  if (!m) return false;
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(m[1]!, "hex"));
}

/** Verifies and parses a webhook body; throws when the signature or the shape is wrong. */
export function parseWebhook(secret: string, body: string | Uint8Array, signature: string | string[] | null | undefined): WebhookEvent {
  if (!verifyWebhookSignature(secret, body, signature)) throw new Error("webhook signature does not match");
  const text = typeof body === "string" ? body : Buffer.from(body).toString("utf8");
  return v.parse(WebhookEvent, JSON.parse(text));
}
