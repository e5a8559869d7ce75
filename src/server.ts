// Wires one node from its configuration: store, bus, service, gateway. node.ts runs it as a
// process; tests start several in one process.
import type { EventBus } from "./bus/bus.ts";
import { MemoryBus } from "./bus/memory-bus.ts";
import { PublishBudgetExceeded } from "./bus/publish-budget.ts";
import { RedisBus } from "./bus/redis-bus.ts";
import { RedisClusterBus } from "./bus/redis-cluster-bus.ts";
import { startFleet } from "./fleet/wire.ts";
import type { Fleet } from "./fleet/fleet.ts";
import { BUNDLE_WIRE } from "./chat/bundle.ts";
import { ByteBudget } from "./chat/budget.ts";
import { Dispatcher } from "./chat/dispatch.ts";
import { Subscriptions } from "./chat/subscriptions.ts";
import { ChatService } from "./chat/service.ts";
import { ReadState } from "./chat/read-state.ts";
import { PrismaReadState } from "./store/prisma-read-state.ts";
import { checkStartup, listenHost, type Config } from "./config/env.ts";
import { Gateway } from "./gateway/gateway.ts";
import { UploadBudget } from "./gateway/upload-budget.ts";
import { identityFromConfig } from "./identity/identity.ts";
import type { Logger } from "./log.ts";
import { createMetrics } from "./metrics/metrics.ts";
import { maxHistoryPageBytes } from "./protocol/index.ts";
import { openDatabase } from "./store/database.ts";
import { withDeadline } from "./deadline.ts";
import { commitMarginMs } from "./store/prisma-store.ts";
import { FILE_CHUNK_BYTES, HttpBudget } from "./http/budget.ts";
import { registerProbeRoutes } from "./http/probes.ts";
import { registerHttpRoutes } from "./http/routes.ts";
import { sendJson } from "./uws/respond.ts";
import { DATABASE_PROBE_MS, DependencyMonitor } from "./health/dependencies.ts";
import { Readiness } from "./health/readiness.ts";
import { uws, type us_listen_socket } from "./uws/uws.ts";
import { CONTROL_GROUP, ControlChannel } from "./bus/control.ts";
import { CLOSE_DISCONNECTED } from "./protocol/index.ts";
import { registerServerApi } from "./http/server-api/routes.ts";
import { serverApiMetrics } from "./metrics/backend-metrics.ts";
import type { Presence, PresenceChange } from "./presence/presence.ts";
import { presenceFromConfig } from "./presence/start.ts";
import { webhooksFromConfig } from "./webhooks/start.ts";

export interface ChatNode {
  port: number;
  /** Where probes and metrics are served when METRICS_PORT is set (else on `port`). */
  metricsPort: number | null;
  gateway: Gateway;
  service: ChatService;
  subscriptions: Subscriptions;
  /** Readiness false, drain delay, stop listening, finish in-flight frames, close sockets, close store and bus. */
  shutdown(): Promise<void>;
}

export async function startNode(config: Config, log: Logger): Promise<ChatNode> {
  checkStartup(config);
  const metrics = createMetrics();
  const identity = identityFromConfig(config, metrics);
  if (identity.jwt) log.info(identity.jwt.describe(), "JWT mode: every connection needs a valid token");
  else log.warn({ identity: "open" }, "OPEN DEV MODE: no JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL is set, so anyone can connect as any user; never expose this node");
  const db = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, writeTimeoutMs: config.STORE_TIMEOUT_MS, writeConcurrency: config.WRITE_CONCURRENCY, writeBatchLingerMs: config.WRITE_BATCH_LINGER_MS, poolSize: config.DATABASE_POOL_SIZE, webhookOutbox: Boolean(config.WEBHOOK_URL), onWriteBatch: (n) => metrics.storeWriteBatch.observe(n), onPoolError: (err) => log.warn({ err: err.message }, "database: an idle pooled connection was closed by the server; the pool drops it"), onTemplateSkipped: (reason) => log.warn({ reason }, "fresh embedded data directory: made by initdb (slow) instead of the build's template") });
  log.info({ database: db.kind, migrationsApplied: db.migrationsApplied, dataDirFrom: db.dataDirFrom }, "database ready");
  // The first read of a shape compiles its query plan and opens a pooled connection: done here, so
  // the node's first upgrade does not spend its join deadline on it (seconds on a loaded machine).
  await withDeadline(db.store.lastSeq(""), 5_000, () => new Error("timed out")).catch((err: unknown) => log.warn({ err }, "warm-up read failed; serving anyway"));

  // bus -> service (ordering) -> gateway: each exists only after the one it is handed to.
  let service: ChatService | undefined;
  let gateway: Gateway | undefined;
  let subscriptions: Subscriptions | undefined;
  let control: ControlChannel | undefined;
  let fleet: Fleet | null = null;
  const webhooks = webhooksFromConfig(config, db.prisma, db.store, metrics.registry, log);
  const receive = (group: string, payload: Uint8Array | string) => (group === CONTROL_GROUP ? control?.receive(payload) : service?.receive(group, payload));
  let bus: EventBus;
  let publishDropLogged = false;
  if (config.REDIS_URL || config.REDIS_CLUSTER_NODES) {
    let lastError = "";
    const hooks = {
      onError: (err: Error) => {
        // ioredis retries forever; log each distinct failure once instead of every retry.
        if (err.message !== lastError) log.warn({ err: err.message }, "redis error");
        lastError = err.message;
      },
      onResubscribed: () => {
        lastError = "";
        publishDropLogged = false;
        log.info({}, "redis reconnected; catching up on missed events");
        service?.catchUp().catch((err) => log.warn({ err }, "catch-up after reconnect failed"));
      },
    };
    const redis = config.REDIS_CLUSTER_NODES
      ? new RedisClusterBus({ nodes: config.REDIS_CLUSTER_NODES, password: config.REDIS_CLUSTER_PASSWORD, tls: config.REDIS_CLUSTER_TLS }, receive, { ...hooks, onPublishDropped: () => metrics.busPublishesDropped.inc() }, config.MAX_BUS_QUEUE_BYTES)
      : new RedisBus(config.REDIS_URL!, receive, { ...hooks, onPublishDropped: () => metrics.busPublishesDropped.inc() }, config.MAX_BUS_QUEUE_BYTES);
    try {
      await redis.ready();
    } catch (err) {
      await redis.close();
      await db.store.close();
      const which = config.REDIS_CLUSTER_NODES ? "the Redis Cluster at REDIS_CLUSTER_NODES" : "Redis at REDIS_URL";
      throw new Error(`${which} is not reachable: ${(err as Error).message}`);
    }
    bus = redis;
  } else {
    bus = new MemoryBus(receive);
  }

  // Presence transitions become join/leave events published by the service (which exists below).
  let presence: Presence;
  try {
    presence = await presenceFromConfig(config, metrics, log, (c: PresenceChange) => service?.presenceChanged(c));
  } catch (err) {
    await bus.close();
    await db.store.close();
    throw err;
  }

  service = new ChatService({
    store: db.store,
    bus,
    limits: { maxBodyChars: config.MAX_BODY_CHARS, maxFileBytes: config.MAX_FILE_BYTES },
    metrics,
    // Live sockets get the event from the gateway's fan-out; resuming subscriptions hold it.
    deliver: (group, payload, seq) => {
      gateway?.publish(group, payload);
      subscriptions?.deliver(group, payload, seq);
    },
    deliverPresence: (group, payload) => {
      gateway?.publishPresence(group, payload);
      subscriptions?.deliverPresence(group, payload);
    },
    delivery: { gapWaitMs: config.ORDER_GAP_WAIT_MS, retryWindowMs: config.RETRY_WINDOW_S * 1000 },
    resumeMemory: { groupBytes: config.RESUME_MEMORY_GROUP_BYTES, totalBytes: config.RESUME_MEMORY_BYTES },
    // A write sends its COMMIT by STORE_TIMEOUT_MS or rolls back; the margin is for the COMMIT's answer.
    storeGuard: { deadlineMs: config.STORE_TIMEOUT_MS + commitMarginMs(config.STORE_TIMEOUT_MS), probeMs: 1_000 },
    onStoreHealth: (up, err) => (up ? log.info({}, "database reachable again") : log.warn({ err }, "database unreachable; answering unavailable until it returns")),
    onPublishError: (err, group) => {
      // A full publish queue (Redis down for long) drops many: counted in chat_bus_publishes_dropped_total, logged once per outage.
      if (err instanceof PublishBudgetExceeded) {
        if (!publishDropLogged) log.warn({ group, err: err.message }, "bus publish queue full: dropping publishes until Redis is back");
        publishDropLogged = true;
        return;
      }
      log.error({ err, group }, "publish failed after commit");
    },
    onDeliveryError: (err, group) => log.warn({ err, group }, "could not read missed events; retrying"),
    onBadBundle: (group) => log.warn({ group }, "dropped a bus bundle this node cannot read (a newer node's format?)"),
    presence,
    presenceMaxBroadcast: config.PRESENCE_MAX_BROADCAST,
    presenceBatchMs: config.PRESENCE_BATCH_MS,
    presenceBusyBatchMs: config.PRESENCE_BUSY_BATCH_MS,
    presenceGraceMs: config.PRESENCE_GRACE_MS,
    // In-process, this node is the only reader; over Redis, bundles wait until the whole fleet reads them.
    presenceBundles: () => bus instanceof MemoryBus || (fleet?.view?.wire ?? 1) >= BUNDLE_WIRE,
    onStored: (group) => webhooks?.kick(group),
  });
  const chat = service;
  const reads = new ReadState({
    store: new PrismaReadState(db.prisma),
    broadcast: (group, event) => chat.broadcast(group, event),
    onError: (err, group) => log.warn({ err, group }, "could not record a membership"),
  });
  const dispatcher = new Dispatcher(service, metrics, log, reads);

  // Shared services are probed in the background; readiness fails only for this node's own
  // reasons (src/health/readiness.ts says why).
  const dependencies = new DependencyMonitor(
    { database: () => db.store.ping(), databaseAnsweredAt: () => chat.storeAnsweredAt, redis: () => bus.isUp() },
    { intervalMs: DATABASE_PROBE_MS, timeoutMs: 2_000 },
    (name, state) => (state.up ? log.info({ dependency: name }, "dependency up") : log.warn({ dependency: name, err: state.error }, "dependency down")),
  );
  dependencies.start();
  const readiness = new Readiness(dependencies, config.READY_MAX_LOOP_DELAY_MS);
  metrics.setProbes({
    databaseUp: () => dependencies.state.database.up,
    busUp: () => dependencies.state.redis.up,
    busChannels: () => service.memberships.size,
    ready: () => readiness.report().ready,
    busQueueBytes: () => (bus instanceof RedisBus || bus instanceof RedisClusterBus ? bus.queuedBytes : 0),
    presenceHeld: () => presence.held,
    resumeMemoryBytes: () => service.recentEvents.bytes,
  });

  const httpBudget = new HttpBudget({ maxBytes: config.HTTP_BUFFER_BYTES, maxFileReads: config.MAX_FILE_READS, fileChunkBytes: FILE_CHUNK_BYTES });
  metrics.setProbes({ httpHeld: () => httpBudget.held });
  // Its gauge is read at scrape: the budget moves twice per frame, and a prom-client set (labels
  // checked and hashed) per move was a measurable share of a typing frame.
  const budget = new ByteBudget(config.MAX_NODE_BUFFER_BYTES);
  metrics.setProbes({ bufferBytes: () => budget.used });
  const uploads = new UploadBudget(config.MAX_UPLOAD_BYTES_PER_SECOND, config.MAX_UPLOAD_INFLIGHT_BYTES, (held) => metrics.uploadInflightBytes.set(held));
  subscriptions = new Subscriptions(
    service,
    {
      maxHeldBytes: config.MAX_HELD_BYTES,
      // Below the slow-consumer limit, so a replay paced by it is never taken for a slow consumer.
      replayBufferBytes: Math.min(config.MAX_REPLAY_BUFFER_BYTES, config.MAX_BACKPRESSURE_BYTES / 2),
      maxConcurrentReplays: config.MAX_CONCURRENT_REPLAYS,
      joinTimeoutMs: 5_000,
    },
    budget,
    metrics,
    log,
  );
  // Presence follows subscriptions: a user is present in a group while one of their sockets follows it.
  subscriptions.on("open", (sub) => sub.user !== null && service.presenceOpen(sub.group, sub.user));
  subscriptions.on("close", (sub) => sub.user !== null && service.presenceClose(sub.group, sub.user));
  subscriptions.on("open", (sub) => reads.touch(sub.group, sub.user)); // subscribing makes the user a member
  gateway = new Gateway(
    { service, dispatcher, subscriptions, budget, uploads, metrics, identity: identity.provider, log },
    {
      maxFrameBytes: config.MAX_FRAME_BYTES,
      maxPendingFrames: config.MAX_PENDING_FRAMES,
      maxPendingBytes: config.MAX_PENDING_BYTES,
      maxSubscriptionsPerSocket: config.MAX_SUBSCRIPTIONS_PER_SOCKET,
      idleTimeoutSeconds: config.IDLE_TIMEOUT_S,
      maxBackpressureBytes: config.MAX_BACKPRESSURE_BYTES,
      maxAnswerBytes: maxHistoryPageBytes(config.MAX_BODY_CHARS),
      limits: {
        framesPerSecond: config.MAX_FRAMES_PER_SECOND,
        framesBurst: config.MAX_FRAMES_BURST,
        userFramesPerSecond: config.MAX_USER_FRAMES_PER_SECOND,
        userUploadBytesPerSecond: config.MAX_USER_UPLOAD_BYTES_PER_SECOND,
        maxSocketsPerUser: config.MAX_SOCKETS_PER_USER,
        maxGroupsPerNode: config.MAX_GROUPS_PER_NODE,
        allowedOrigins: config.ALLOWED_ORIGINS ?? null,
      },
    },
  );
  // The entry wires both transports onto the one uWS app: the gateway (WebSocket) above, HTTP here.
  registerHttpRoutes(gateway.app, { service, reads, metrics, identity: identity.provider, httpBudget, log });
  // Node-to-node commands (server API disconnect) arrive on the bus's control channel.
  control = new ControlChannel(
    bus,
    (c) => {
      const n = gateway?.disconnectUser(c.user, CLOSE_DISCONNECTED, "disconnected by the server") ?? 0;
      log.info({ user: c.user, sockets: n }, "disconnected a user on request of the server API");
    },
    (payload) => log.warn({ payload: payload.slice(0, 200) }, "ignored a malformed control command"),
  );
  await control.start();
  if (config.SERVER_API_KEYS) {
    const apiMetrics = serverApiMetrics(metrics.registry);
    registerServerApi(gateway.app, { service, control, busUp: () => bus.isUp(), outbox: webhooks?.outbox ?? null }, {
      keys: config.SERVER_API_KEYS,
      maxBodyBytes: config.MAX_FRAME_BYTES,
      budget,
      uploads,
      uploaded: (bytes) => metrics.uploadBytes.inc(bytes),
      onError: (err, route) => log.error({ err, route }, "server API request failed"),
      count: (route, status, limit) => {
        apiMetrics.requests.inc({ route, status: String(status) });
        if (limit) metrics.limitHits.inc({ limit });
      },
    });
    log.info({ keys: config.SERVER_API_KEYS.length }, "server API on under /api/server/");
  }
  // Probes and metrics: on the main port, or only on METRICS_PORT (kept off the public Service).
  const host = listenHost(config);
  const probeApp = config.METRICS_PORT === undefined ? gateway.app : uws.App();
  registerProbeRoutes(probeApp, { metrics, readiness: () => readiness.report(), log });
  let metricsSocket: us_listen_socket | null = null;
  let metricsPort: number | null = null;
  if (config.METRICS_PORT !== undefined) {
    probeApp.any("/*", (res) => sendJson(res, 404, { error: "not_found", message: "no such route" }));
    metricsSocket = await new Promise<us_listen_socket>((resolve, reject) =>
      probeApp.listen(host, config.METRICS_PORT!, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${host}:${config.METRICS_PORT} (METRICS_PORT)`)))),
    );
    metricsPort = uws.us_socket_local_port(metricsSocket as never);
  }
  const port = await gateway.listen(host, config.PORT);
  readiness.listening = true;
  readiness.start(); // the event loop is watched from here: start-up's own work does not count
  if (webhooks) {
    webhooks.start();
    log.info({ receiver: new URL(config.WEBHOOK_URL!).origin }, "webhooks on: delivering the outbox");
  }
  log.info({ port, host, bus: config.REDIS_CLUSTER_NODES ? "redis-cluster" : config.REDIS_URL ? "redis" : "memory" }, "listening");
  fleet = startFleet(config, log, metrics, gateway);
  if (metricsPort !== null) log.info({ metricsPort }, "probes and metrics listening");

  let stopping: Promise<void> | null = null;
  const shutdown = () =>
    (stopping ??= (async () => {
      readiness.draining = true;
      await fleet?.stop(); // the others stop counting this node (and its sockets) at once
      metrics.draining.set(1);
      metrics.ready.set(0);
      log.info({ drainDelayMs: config.DRAIN_DELAY_MS, drainSpreadMs: config.DRAIN_SPREAD_MS }, "draining");
      if (config.DRAIN_DELAY_MS > 0) await new Promise((r) => setTimeout(r, config.DRAIN_DELAY_MS));
      readiness.listening = false;
      await gateway.shutdown(config.SHUTDOWN_TIMEOUT_MS / 2, config.DRAIN_SPREAD_MS);
      dependencies.stop();
      readiness.stop();
      metrics.stop();
      if (metricsSocket) uws.us_listen_socket_close(metricsSocket);
      await presence.stop(); // its users leave after the grace unless they reconnect elsewhere
      service.flushPresence(); // join/leave frames still held for their tick go out before the bus closes
      await webhooks?.stop();
      await bus.close();
      await db.store.close();
      log.info({}, "stopped");
    })());

  return { port, metricsPort, gateway, service, subscriptions, shutdown };

}
