// Probes and metrics: readiness fails only for the node's own reasons (draining, not listening,
// event loop stalled) and reports shared dependencies without failing on them; nothing a
// caller of /readyz or /metrics does reaches the database; METRICS_PORT keeps all three off
// the public port.
import t from "tap";
import { startInProcess } from "../helpers/node.ts";
import { eventually, httpGet, metric, statusOf } from "../helpers/probe.ts";
import { freshDatabase, PG_ADMIN_URL } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

const url = await freshDatabase(t);
const readyz = async (port: number) => {
  const r = await httpGet(port, "/readyz", 5_000);
  if (!("status" in r)) throw new Error(`/readyz failed: ${r.error}`);
  return { status: r.status, body: JSON.parse(r.body) as { ready: boolean; checks: Record<string, boolean>; dependencies: Record<string, { up: boolean; error?: string }> } };
};

t.test("a database that stops answering is reported by /readyz and chat_db_up, the node stays ready, and no probe waits on it", async (t) => {
  const target = new URL(PG_ADMIN_URL);
  const proxy = await TcpProxy.start(t, Number(target.port || 5432), target.hostname);
  const proxied = new URL(url);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);
  const node = await startInProcess(t, { DATABASE_URL: proxied.toString() });
  t.teardown(() => proxy.restore());
  t.match(await readyz(node.port), { status: 200, body: { ready: true, dependencies: { database: { up: true }, redis: { up: true } } } });

  await proxy.cut("stall"); // a black hole: queries neither answer nor fail
  const started = Date.now();
  const statuses = new Set<number>();
  for (let i = 0; i < 25; i++) {
    statuses.add((await readyz(node.port)).status);
    statuses.add(await statusOf(node.port, "/metrics"));
  }
  const ms = Date.now() - started;
  t.same([...statuses], [200], "every probe and scrape answered 200");
  // Each used to wait for a database ping (up to 2 s): 50 of them would take 100 s.
  t.ok(ms < 10_000, `50 probes and scrapes answered in ${ms} ms while the database hangs: none waits on it`);
  t.ok(await eventually(async () => (await readyz(node.port)).body.dependencies.database!.up === false, 8_000, 100), "the background probe finds the database down");
  t.match(await readyz(node.port), { status: 200, body: { ready: true, dependencies: { database: { up: false, error: /within 2000 ms/ } } } }, "and readiness stays 200");
  t.equal(await metric(node.port, "chat_db_up"), 0);
  t.equal(await metric(node.port, "chat_ready"), 1);

  await proxy.restore();
  t.ok(await eventually(async () => (await metric(node.port, "chat_db_up")) === 1, 10_000, 100), "chat_db_up is 1 again after the restore");
});

t.test("an event loop blocked for longer than READY_MAX_LOOP_DELAY_MS makes the node unready until it recovers", async (t) => {
  const node = await startInProcess(t, { DATABASE_URL: url, READY_MAX_LOOP_DELAY_MS: "300" });
  t.equal((await readyz(node.port)).status, 200);
  const until = Date.now() + 800;
  while (Date.now() < until); // this process is the node's: block its event loop
  const r = await readyz(node.port);
  t.match(r, { status: 503, body: { ready: false, checks: { event_loop: false, listening: true, draining: false } } });
  t.ok(await eventually(async () => (await readyz(node.port)).status === 200, 10_000, 200), "ready again once the loop runs freely (the last 5 s)");
});

t.test("with METRICS_PORT, probes and metrics are served only there; the public port answers 404 for them", async (t) => {
  const node = await startInProcess(t, { DATABASE_URL: url, METRICS_PORT: "0" });
  t.ok(node.metricsPort && node.metricsPort !== node.port, `metrics on port ${node.metricsPort}`);
  for (const p of ["/healthz", "/readyz", "/metrics"]) {
    t.equal(await statusOf(node.port, p), 404, `${p} on the public port`);
    t.equal(await statusOf(node.metricsPort!, p), 200, `${p} on METRICS_PORT`);
  }
  t.equal(await statusOf(node.metricsPort!, "/api/groups/g/messages"), 404, "and nothing else is served on METRICS_PORT");
  t.equal(await statusOf(node.port, "/api/groups/g/messages"), 200, "while the public routes stay on the public port");
});
