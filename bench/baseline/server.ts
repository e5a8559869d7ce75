// The baseline: a bare uWebSockets.js server speaking the service's frames with no validation,
// storage or auth, so a benchmark can tell what the service's own work costs on top of the
// transport. With REDIS_URL set it relays every event through Redis like the service does
// (a node publishes, each node subscribed to the group relays), so cross-node runs compare
// like with like. With REDIS_CLUSTER_NODES (`host:port,…`) it relays through a Redis Cluster's
// sharded pub/sub instead (SSUBSCRIBE/SPUBLISH on a hash-tagged channel per group), as the service
// does, so the Redis Cluster runs compare like with like too.
//
// Env: PORT (0 = any; the chosen port is printed as {"listening":port}), HOST, REDIS_URL or
// REDIS_CLUSTER_NODES, BASELINE_REDIS_PREFIX (channel/key prefix, so concurrent runs on one Redis
// stay apart).
import { Cluster, Redis } from "ioredis";
import { loadUws, type uws } from "../lib/uws.ts";

interface Conn {
  group: string;
  closed: boolean;
}

interface ClientFrame {
  operation?: unknown;
  user?: unknown;
  typing_status?: unknown;
  type?: unknown;
  body?: unknown;
  request_id?: unknown;
}

const uWS = loadUws();
const port = Number(process.env.PORT ?? "0");
const host = process.env.HOST ?? "127.0.0.1";
const redisUrl = process.env.REDIS_URL || undefined;
const clusterNodes = process.env.REDIS_CLUSTER_NODES
  ? process.env.REDIS_CLUSTER_NODES.split(",").map((a) => ({ host: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)) }))
  : undefined;
const prefix = process.env.BASELINE_REDIS_PREFIX ?? "baseline:";

const app = uWS.App();
const decoder = new TextDecoder();
const seqs = new Map<string, number>();
// Ids only need to be unique per run; a per-process tag keeps several nodes apart.
const idTag = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let nextId = 0;

const bus = clusterNodes ? clusterBus(clusterNodes) : redisUrl ? redisBus(redisUrl) : undefined;

function messageEvent(group: string, seq: number, id: string, f: ClientFrame): string {
  return JSON.stringify({
    operation: "create",
    seq,
    group,
    message: {
      id,
      user: f.user,
      body: f.body,
      type: f.type,
      file: null,
      attachment: null,
      reply_to: null,
      created: new Date().toISOString(),
      updated: null,
      deleted: false,
    },
  });
}

function ack(ws: uws.WebSocket<Conn>, requestId: unknown, messageId: string, seq: number): void {
  if (typeof requestId !== "string" || ws.getUserData().closed) return;
  ws.send(JSON.stringify({ operation: "ack", group: ws.getUserData().group, request_id: requestId, message_id: messageId, seq }));
}

function onFrame(ws: uws.WebSocket<Conn>, f: ClientFrame): void {
  const group = ws.getUserData().group;
  if (f.operation === "typing") {
    const event = JSON.stringify({ operation: "typing", group, user: f.user, typing_status: f.typing_status });
    if (bus) bus.publish(group, event);
    else app.publish(group, event);
    return;
  }
  if (f.operation !== "create") return;
  const id = `${idTag}-${nextId++}`;
  if (!bus) {
    const seq = (seqs.get(group) ?? 0) + 1;
    seqs.set(group, seq);
    app.publish(group, messageEvent(group, seq, id, f));
    ack(ws, f.request_id, id, seq);
    return;
  }
  // Across nodes the counter has to live in Redis, as it would in any multi-node design.
  bus.nextSeq(group).then(
    async (seq) => {
      await bus.publish(group, messageEvent(group, seq, id, f));
      ack(ws, f.request_id, id, seq);
    },
    (err: unknown) => console.error("baseline: redis", err),
  );
}

function redisBus(url: string) {
  const pub = new Redis(url, { lazyConnect: false });
  const sub = new Redis(url, { lazyConnect: false });
  sub.on("message", (channel: string, payload: string) => {
    app.publish(channel.slice(prefix.length), payload);
  });
  return {
    publish: (group: string, event: string) => pub.publish(prefix + group, event),
    nextSeq: (group: string) => pub.incr(`${prefix}seq:${group}`),
    join: (group: string) => void sub.subscribe(prefix + group),
    leave: (group: string) => void sub.unsubscribe(prefix + group),
    ping: () => pub.ping(),
  };
}

/** Sharded pub/sub: each group's channel `<prefix>{<group>}` lives on the shard of the group's slot. */
function clusterBus(nodes: { host: string; port: number }[]) {
  const cluster = new Cluster(nodes, { shardedSubscribers: true });
  const channel = (group: string) => `${prefix}{${group}}`;
  cluster.on("smessage", (ch: string, payload: string) => {
    app.publish(ch.slice(prefix.length + 1, -1), payload);
  });
  return {
    publish: (group: string, event: string) => cluster.spublish(channel(group), event),
    nextSeq: (group: string) => cluster.incr(`${prefix}seq:{${group}}`),
    join: (group: string) => void cluster.ssubscribe(channel(group)),
    leave: (group: string) => void cluster.sunsubscribe(channel(group)),
    ping: () => cluster.ping(),
  };
}

const behavior: uws.WebSocketBehavior<Conn> = {
  maxPayloadLength: 8 * 1024 * 1024,
  idleTimeout: 120,
  // uWS silently skips subscribers whose backlog exceeds this; generous so the baseline never
  // drops events and any loss a run reports belongs to the service.
  maxBackpressure: 64 * 1024 * 1024,
  upgrade: (res, req, context) => {
    const group = decodeURIComponent(req.getParameter(0) ?? "");
    res.upgrade<Conn>(
      { group, closed: false },
      req.getHeader("sec-websocket-key"),
      req.getHeader("sec-websocket-protocol"),
      req.getHeader("sec-websocket-extensions"),
      context,
    );
  },
  open: (ws) => {
    const { group } = ws.getUserData();
    ws.subscribe(group);
    if (bus && app.numSubscribers(group) === 1) bus.join(group);
  },
  message: (ws, message) => {
    let frame: ClientFrame;
    try {
      frame = JSON.parse(decoder.decode(message)) as ClientFrame;
    } catch {
      return;
    }
    if (frame !== null && typeof frame === "object") onFrame(ws, frame);
  },
  close: (ws) => {
    const conn = ws.getUserData();
    conn.closed = true;
    // uWS unsubscribes a closing socket only after this handler, hence "1 left".
    if (bus && app.numSubscribers(conn.group) <= 1) bus.leave(conn.group);
  },
};

app
  .ws("/ws/chat/:group", behavior)
  .ws("/ws/chat/:group/", behavior)
  .get("/readyz", (res) => {
    if (!bus) {
      res.end("ok");
      return;
    }
    let aborted = false;
    res.onAborted(() => (aborted = true));
    bus.ping().then(
      () => !aborted && res.cork(() => res.end("ok")),
      () => !aborted && res.cork(() => res.writeStatus("503 Service Unavailable").end("redis down")),
    );
  })
  .any("/*", (res) => {
    res.writeStatus("404 Not Found").end();
  })
  .listen(host, port, (listenSocket) => {
    if (!listenSocket) {
      console.error(`baseline: cannot listen on ${host}:${port}`);
      process.exit(1);
    }
    // With PORT=0 the caller cannot know the port otherwise.
    if (port === 0) process.stdout.write(`${JSON.stringify({ listening: uWS.us_socket_local_port(listenSocket) })}\n`);
    const stop = () => {
      uWS.us_listen_socket_close(listenSocket);
      process.exit(0);
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
