// `npm run cluster -- [--nodes 3] [--port 8080]`: N chat nodes behind HAProxy on loopback, with
// one shared PostgreSQL and Redis; prints the URL and takes commands on stdin (add, stop n2,
// kill n2, status). Ctrl-C stops everything. See scripts/cluster/cluster.ts.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Cluster, DEFAULT_PG_ADMIN_URL, ensureDatabase } from "./cluster.ts";

const usage = `usage: npm run cluster -- [options]

  --nodes N          replicas to start (default 3)
  --port P           the load balancer's port on 127.0.0.1 (default 8080; 0 = any free port)
  --stats-port P     HAProxy's stats page (default 8404; 0 = off)
  --drain-delay MS   each node's DRAIN_DELAY_MS (default 1000)
  --database NAME    database on $PG_ADMIN_URL (default chatroom_cluster; ignored when DATABASE_URL is set)
  --fresh            drop and recreate that database first
  --quiet            do not print the nodes' logs
  -h, --help

Environment: DATABASE_URL (else NAME on PG_ADMIN_URL, default ${DEFAULT_PG_ADMIN_URL}),
REDIS_URL (default redis://127.0.0.1:6379), HAPROXY (the binary), and any node setting
(JWT_SECRET, MAX_BODY_CHARS, ORDER_GAP_WAIT_MS, …), passed on to every node.`;

let args;
try {
  args = parseArgs({
    options: {
      nodes: { type: "string", default: "3" },
      port: { type: "string", default: "8080" },
      "stats-port": { type: "string", default: "8404" },
      "drain-delay": { type: "string", default: "1000" },
      database: { type: "string", default: "chatroom_cluster" },
      fresh: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
} catch (err) {
  console.error(`${(err as Error).message}\n\n${usage}`);
  process.exit(2);
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}
const int = (name: string, value: string, min: number) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}, got ${value}`);
    process.exit(2);
  }
  return n;
};
const nodes = int("nodes", args.nodes, 0);
const port = int("port", args.port, 0);
const statsPort = int("stats-port", args["stats-port"], 0);
const drainDelayMs = int("drain-delay", args["drain-delay"], 0);

// Node settings from this environment go to every node (the cluster sets PORT, HOST, DATABASE_URL, REDIS_URL).
const PASSED = /^(JWT_SECRET|MAX_[A-Z_]+|ORDER_GAP_WAIT_MS|RETRY_WINDOW_S|SHUTDOWN_TIMEOUT_MS|DRAIN_SPREAD_MS|LOG_LEVEL|NODE_ENV|DATA_DIR)$/;
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => PASSED.test(k)));

const databaseUrl = process.env.DATABASE_URL ?? (await ensureDatabase(process.env.PG_ADMIN_URL ?? DEFAULT_PG_ADMIN_URL, args.database, { fresh: args.fresh }));

const pad = (s: string) => s.padEnd(7);
const short = (line: string) => {
  try {
    const { level, time, pid, hostname, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
    void level, time, pid, hostname;
    const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
    return `${msg}${extra}`;
  } catch {
    return line;
  }
};

let cluster: Cluster;
try {
  cluster = await Cluster.start({
    nodes,
    port,
    statsPort: statsPort || undefined,
    databaseUrl,
    drainDelayMs,
    env,
    onLog: (source, line) => {
      if (source === "cluster") console.log(`${pad("cluster")} ${line}`);
      else if (!args.quiet) console.log(`${pad(source)} ${short(line)}`);
    },
  });
} catch (err) {
  console.error(`cannot start the cluster: ${(err as Error).message}`);
  process.exit(1);
}

const status = async () => {
  const servers = await cluster.servers();
  const lines = servers.map((s) => `  ${pad(s.name)} ${s.address.padEnd(22)} ${s.status.padEnd(8)} check ${s.check.padEnd(6)} connections ${s.sessions}`);
  console.log(`load balancer ${cluster.url} (HAProxy ${cluster.haproxyVersion})\n${lines.join("\n") || "  (no nodes)"}`);
};

console.log(`
chat cluster up: ${cluster.live.length} node(s) behind HAProxy
  WebSocket   ${cluster.wsUrl("lobby", { user: "alice" })}
  HTTP        ${cluster.url}/readyz, ${cluster.url}/api/groups/lobby/messages${statsPort ? `\n  LB stats    http://${cluster.host}:${statsPort}/` : ""}
  metrics     ${cluster.live.map((n) => `http://${cluster.host}:${n.port}/metrics`).join(" ")}
  database    ${databaseUrl.replace(/\/\/[^@]*@/, "//…@")}
  redis       ${cluster.redisUrl}
  haproxy.cfg ${cluster.workDir}/haproxy.cfg
commands: add | stop <node> (SIGTERM, drains) | kill <node> (SIGKILL) | status | quit; Ctrl-C stops everything
`);

let quitting = false;
const quit = async (code = 0) => {
  if (quitting) return;
  quitting = true;
  console.log(`${pad("cluster")} stopping (SIGTERM to every node, then HAProxy)`);
  await cluster.stop();
  process.exit(code);
};
process.on("SIGINT", () => void quit());
process.on("SIGTERM", () => void quit());

const rl = createInterface({ input: process.stdin });
rl.on("line", (input) => {
  const [cmd, arg] = input.trim().split(/\s+/);
  const run = async () => {
    switch (cmd) {
      case "":
      case undefined:
        return;
      case "add": {
        const n = await cluster.addNode();
        console.log(`${pad("cluster")} ${n.name} serving on ${n.port}, metrics http://${cluster.host}:${n.port}/metrics`);
        return;
      }
      case "stop":
      case "kill":
        if (!arg) throw new Error(`${cmd} needs a node name (${cluster.live.map((n) => n.name).join(", ")})`);
        await cluster.stopNode(arg, cmd === "stop" ? "SIGTERM" : "SIGKILL");
        return;
      case "status":
        return status();
      case "quit":
      case "exit":
        return quit();
      default:
        throw new Error(`unknown command ${cmd}: add | stop <node> | kill <node> | status | quit`);
    }
  };
  run().catch((err) => console.error(`${pad("cluster")} ${(err as Error).message}`));
});
// stdin closed (e.g. not a terminal): keep running until a signal.
rl.on("close", () => undefined);
