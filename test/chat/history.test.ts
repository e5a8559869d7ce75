// history over WebSocket and HTTP: newest last, before/limit paging with has_more.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const api = (group: string, q = "") => fetch(`http://127.0.0.1:${node.port}/api/groups/${group}/messages${q}`);

const a = await connect(t, node.port, "hist", { user: "alice" });
const ids: string[] = [];
for (let i = 1; i <= 7; i++) ids.push(String((await a.request({ operation: "create", type: "text", body: `m${i}` })).message_id));
await a.request({ operation: "update", message_id: ids[1]!, body: "m2 edited" });

t.test("history answers the asker alone, oldest first, in current state", async (t) => {
  const other = await connect(t, node.port, "hist", { user: "bob" });
  const h = await a.request({ operation: "history", limit: 3 });
  if (h.operation !== "history") throw new Error("unreachable");
  t.same(h.messages.map((m) => m.body), ["m5", "m6", "m7"]);
  t.equal(h.has_more, true);
  const page2 = await a.request({ operation: "history", before: h.messages[0]!.id, limit: 3 });
  if (page2.operation !== "history") throw new Error("unreachable");
  t.same(page2.messages.map((m) => m.body), ["m2 edited", "m3", "m4"]);
  t.equal(page2.has_more, true);
  const page3 = await a.request({ operation: "history", before: page2.messages[0]!.id });
  if (page3.operation !== "history") throw new Error("unreachable");
  t.same(page3.messages.map((m) => m.body), ["m1"]);
  t.equal(page3.has_more, false);
  await other.nothingMore(t);
});

t.test("history refusals", async (t) => {
  t.match(await a.request({ operation: "history", limit: 0 }), { code: "bad_request" });
  t.match(await a.request({ operation: "history", limit: 101 }), { code: "bad_request" });
  t.match(await a.request({ operation: "history", limit: "5" }), { code: "bad_request" });
  t.match(await a.request({ operation: "history", before: "no-such-id" }), { code: "not_found" });
  const elsewhere = await connect(t, node.port, "hist-other", { user: "x" });
  t.match(await elsewhere.request({ operation: "history", before: ids[0] }), { code: "not_found" }, "before must be a message of this group");
  const empty = await elsewhere.request({ operation: "history" });
  t.same(empty, { operation: "history", group: "hist-other", request_id: empty.request_id, messages: [], has_more: false });
});

t.test("history over HTTP pages the same way", async (t) => {
  const res = await api("hist", "?limit=2");
  t.equal(res.status, 200);
  t.match(res.headers.get("content-type"), /application\/json/);
  const body = (await res.json()) as { messages: { id: string; body: string }[]; has_more: boolean };
  t.same(body.messages.map((m) => m.body), ["m6", "m7"]);
  t.equal(body.has_more, true);
  const next = (await (await api("hist", `?before=${body.messages[0]!.id}&limit=100`)).json()) as typeof body;
  t.equal(next.messages.length, 5);
  t.equal(next.has_more, false);
  t.equal((await api("hist")).status, 200, "limit defaults to 50");
  t.same(await (await api("never-used")).json(), { messages: [], has_more: false }, "a group with no messages is an empty list");
  t.equal((await api("hist", "?limit=0")).status, 400);
  t.equal((await api("hist", "?limit=101")).status, 400);
  t.equal((await api("hist", "?limit=abc")).status, 400);
  t.equal((await api("bad%2Fname")).status, 400, "bad group name is 400");
  t.equal((await api("hist", "?before=unknown")).status, 404, "unknown before is 404");
});
