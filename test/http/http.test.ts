// The HTTP surface: probes, metrics, files, and 404 for everything else.
import { request } from "node:http";
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const get = (path: string) => fetch(`http://127.0.0.1:${node.port}${path}`);
const b64 = (s: string) => Buffer.from(s).toString("base64");

t.test("healthz and readyz", async (t) => {
  t.equal((await get("/healthz")).status, 200);
  const ready = await get("/readyz");
  t.equal(ready.status, 200);
  t.match(await ready.json(), {
    ready: true,
    checks: { listening: true, draining: false, event_loop: true },
    dependencies: { database: { up: true, since: String, checked_at: String }, redis: { up: true } },
    event_loop_delay_ms: Number,
  });
});

t.test("anything else is 404", async (t) => {
  // "/" is the chat page (test/client/page.test.ts). The paths go out as written: fetch would
  // resolve the dot segments first (/files/%2e%2e would become /).
  const raw = (path: string) =>
    new Promise<number>((resolve, reject) => {
      request({ host: "127.0.0.1", port: node.port, path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
  for (const p of ["/nope", "/index.html", "/app.ts", "/files/", "/files/../etc/passwd", "/files/%2e%2e", "/api/groups/x", "/ws/chat/room/"]) {
    t.equal(await raw(p), 404, p);
  }
});

t.test("metrics count connections, groups, frames, events and errors", async (t) => {
  const c = await connect(t, node.port, "metrics", { user: "m" });
  await c.request({ operation: "create", type: "text", body: "x" });
  await c.request({ operation: "typing", typing_status: "typing" });
  await c.request({ operation: "nope" });
  const res = await get("/metrics");
  t.match(res.headers.get("content-type"), /text\/plain/);
  const text = await res.text();
  t.match(text, /^chat_connections 1$/m);
  t.match(text, /^chat_groups 1$/m);
  t.match(text, /^chat_frames_received_total\{operation="create"\} 1$/m);
  t.match(text, /^chat_frames_received_total\{operation="invalid"\} 1$/m);
  t.match(text, /^chat_events_published_total\{operation="create"\} 1$/m);
  t.match(text, /^chat_events_published_total\{operation="typing"\} 1$/m);
  t.match(text, /^chat_errors_total\{code="unknown_operation"\} 1$/m);
  t.match(text, /^chat_errors_total\{code="internal"\} 0$/m);
  t.match(text, /^chat_store_duration_seconds_count\{operation="create"\} 1$/m);
  t.match(text, /^nodejs_eventloop_lag_seconds /m);
  await c.close();
  await new Promise((r) => setTimeout(r, 50));
  t.match(await (await get("/metrics")).text(), /^chat_connections 0$/m);
});

t.test("files are served with their type, nosniff and a safe Content-Disposition", async (t) => {
  const c = await connect(t, node.port, "files", { user: "f" });
  const upload = async (name: string, type: string, data: string) => {
    await c.request({ operation: "create", type: "file", file: { name, content_type: type, data: b64(data) } });
    const ev = await c.next((f) => f.operation === "create");
    if (ev.operation !== "create") throw new Error("unreachable");
    return ev.message.file!;
  };
  const png = await get(await upload("cat.png", "image/png", "PNG"));
  t.equal(png.headers.get("content-type"), "image/png");
  t.equal(png.headers.get("x-content-type-options"), "nosniff");
  t.match(png.headers.get("content-disposition"), /^inline; filename="cat.png"/);
  t.equal(await png.text(), "PNG");

  const html = await get(await upload('evil"; x=".html', "text/html", "<script>alert(1)</script>"));
  t.equal(html.headers.get("content-type"), "text/html");
  const cd = html.headers.get("content-disposition")!;
  t.match(cd, /^attachment; filename="evil__ x=_.html"; filename\*=UTF-8''evil%22%3B%20x%3D%22.html$/, "quotes and semicolons cannot break out");
  t.match(html.headers.get("content-security-policy"), /sandbox/);

  const svg = await get(await upload("x.svg", "image/svg+xml", "<svg/>"));
  t.match(svg.headers.get("content-disposition"), /^attachment;/, "SVG can carry script: never inline");

  const uni = await get(await upload("résumé ✓.pdf", "application/pdf", "%PDF"));
  t.match(uni.headers.get("content-disposition"), /filename\*=UTF-8''r%C3%A9sum%C3%A9%20%E2%9C%93\.pdf/);

  t.equal((await get("/files/00000000-0000-0000-0000-000000000000")).status, 404, "unknown file");
});
