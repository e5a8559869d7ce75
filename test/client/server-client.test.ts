// The backend helper's pure parts: webhook signatures (what verifies and what does not) and a
// publish retried after `unavailable` or a network failure with its original request_id.
import { createHmac } from "node:crypto";
import t from "tap";
import { ChatServerClient, parseWebhook, ServerApiError, verifyWebhookSignature } from "../../src/client/server/index.ts";

const SECRET = "webhook-secret-0123456789";
const body = JSON.stringify({ group: "g", seq: 3, operation: "delete", message_id: "m1", user: "mod" });
const hex = createHmac("sha256", SECRET).update(body).digest("hex");

t.test("a webhook signature verifies only for the same secret and the same bytes", async (t) => {
  t.ok(verifyWebhookSignature(SECRET, body, `sha256=${hex}`));
  t.ok(verifyWebhookSignature(SECRET, Buffer.from(body), `sha256=${hex}`), "bytes or string alike");
  for (const [what, secret, b, sig] of [
    ["another secret", "another-secret-0123456789", body, `sha256=${hex}`],
    ["a changed body", SECRET, body.replace("mod", "moe"), `sha256=${hex}`],
    ["no prefix", SECRET, body, hex],
    ["upper-case hex", SECRET, body, `sha256=${hex.toUpperCase()}`],
    ["a short digest", SECRET, body, `sha256=${hex.slice(2)}`],
    ["an empty header", SECRET, body, ""],
    ["a missing header", SECRET, body, undefined],
    ["a repeated header", SECRET, body, [`sha256=${hex}`, `sha256=${hex}`]],
  ] as const) {
    t.notOk(verifyWebhookSignature(secret, b, sig as never), what);
  }
  t.same(parseWebhook(SECRET, body, `sha256=${hex}`), JSON.parse(body));
  t.throws(() => parseWebhook(SECRET, body, `sha256=${"0".repeat(64)}`), /signature/);
  const bad = JSON.stringify({ group: "g", seq: 0, operation: "delete" });
  t.throws(() => parseWebhook(SECRET, bad, `sha256=${createHmac("sha256", SECRET).update(bad).digest("hex")}`), "a signed body of the wrong shape is refused");
});

t.test("publish retries unavailable answers and network errors with the same request_id, and not other errors", async (t) => {
  const seen: { url: string; auth: string | null; body: { request_id: string } }[] = [];
  const answers: (() => Response)[] = [
    () => {
      throw new TypeError("fetch failed");
    },
    () => new Response(JSON.stringify({ code: "unavailable", message: "db down" }), { status: 503 }),
    () => new Response(JSON.stringify({ message_id: "m9", seq: 4 }), { status: 200 }),
  ];
  const fakeFetch = (async (url: string, init: RequestInit) => {
    seen.push({ url, auth: new Headers(init.headers).get("authorization"), body: JSON.parse(String(init.body)) });
    return answers.shift()!();
  }) as typeof fetch;
  const client = new ChatServerClient({ url: "http://chat.test/", apiKey: "k".repeat(20), fetch: fakeFetch });
  t.same(await client.publish("lobby", { user: "bot", type: "text", body: "hi" }), { message_id: "m9", seq: 4 });
  t.equal(seen.length, 3);
  t.equal(seen[0]!.url, "http://chat.test/api/server/groups/lobby/messages");
  t.equal(seen[0]!.auth, `Bearer ${"k".repeat(20)}`);
  t.ok(seen[0]!.body.request_id, "a request_id is generated");
  t.ok(seen.every((s) => s.body.request_id === seen[0]!.body.request_id), "every attempt carries the same request_id");

  const refusing = new ChatServerClient({ url: "http://chat.test", apiKey: "k".repeat(20), fetch: (async () => new Response(JSON.stringify({ code: "too_large", message: "body is longer than 4000 characters" }), { status: 413 })) as unknown as typeof fetch });
  const err = await refusing.publish("lobby", { user: "bot", type: "text", body: "x" }).catch((e: unknown) => e);
  t.ok(err instanceof ServerApiError);
  t.match(err, { status: 413, code: "too_large" });
});
