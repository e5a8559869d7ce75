// The WebSocket URL and identity rules, checked before any frame.
import t from "tap";
import { connect, upgradeStatus } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const base = `ws://127.0.0.1:${node.port}`;

t.test("group names follow the Django Channels rule; anything else is 400 before the upgrade", async (t) => {
  for (const ok of ["a", "Room_1.2-3", "x".repeat(99), "with%2Dpercent"]) {
    t.equal(await upgradeStatus(`${base}/ws/chat/${ok}/`), 101, `${ok} accepted`);
  }
  const hostile = ["x".repeat(100), "%2E%2E%2Fetc%2Fpasswd", "a%20b", "drop%3Btable", "%00", "caf%C3%A9", "%E0%A4%A", "'%20OR%201=1--", "a%0Ab"];
  for (const bad of hostile) t.equal(await upgradeStatus(`${base}/ws/chat/${bad}/`), 400, `${bad} refused`);
});

t.test("the trailing slash is optional; other paths are 404", async (t) => {
  t.equal(await upgradeStatus(`${base}/ws/chat/room`), 101);
  t.equal(await upgradeStatus(`${base}/ws/chat/room/`), 101);
  for (const p of ["/ws/chat/", "/ws/chat/a/b", "/ws/room/", "/chat/room/", "/nope"]) t.equal(await upgradeStatus(`${base}${p}`), 404, `${p} is 404`);
});

t.test("open dev mode: ?user= fixes the user; without it each frame names its own", async (t) => {
  t.equal(await upgradeStatus(`${base}/ws/chat/room/?user=${encodeURIComponent("bad\u0001user")}`), 400, "a hostile ?user= is refused");
  const fixed = await connect(t, node.port, "idn", { user: "alice" });
  t.match(await fixed.request({ operation: "create", type: "text", body: "hi" }), { operation: "ack" }, "frame without user uses ?user=");
  t.match(await fixed.request({ operation: "create", type: "text", body: "hi", user: "alice" }), { operation: "ack" }, "the same user is fine");
  t.match(await fixed.request({ operation: "create", type: "text", body: "hi", user: "bob" }), { code: "forbidden" });
  const open = await connect(t, node.port, "idn");
  t.match(await open.request({ operation: "create", type: "text", body: "hi" }), { code: "bad_request" }, "no user anywhere");
  t.match(await open.request({ operation: "create", type: "text", body: "hi", user: "" }), { code: "bad_request" }, "empty user");
  t.match(await open.request({ operation: "create", type: "text", body: "hi", user: "carol" }), { operation: "ack" });
  const h = await open.request({ operation: "history" });
  if (h.operation !== "history") throw new Error("unreachable");
  t.same(h.messages.map((m) => m.user), ["alice", "alice", "carol"]);
});
