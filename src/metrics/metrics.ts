// The node's Prometheus metrics, on a registry of its own so several nodes can live in one
// process (tests) without sharing counters.
import client from "prom-client";
import { defaultMetrics } from "./default-metrics.ts";
import { ERROR_CODES, LIMITS, OPERATIONS } from "../protocol/index.ts";

export type Metrics = ReturnType<typeof createMetrics>;

/** Operation label for frames: known operations only, so hostile input cannot grow the label set. */
export const operationLabel = (op: unknown): string =>
  typeof op === "string" && (OPERATIONS as string[]).includes(op) ? op : "invalid";

/**
 * A one-label counter bumped on a hot path (every frame, every event published): the counts are
 * kept as plain numbers and added to the Prometheus counter when it is read, because prom-client's
 * `inc` hashes and checks its labels on every call, which cost more than the typing frame it
 * counted. The exposition is the same; a scrape sees every count made before it.
 */
export class Tally {
  readonly counter: client.Counter<string>;
  private readonly counts = new Map<string, number>();

  constructor(config: { name: string; help: string; labelName: string; registry: client.Registry }) {
    const { labelName, registry, ...meta } = config;
    const counts = this.counts;
    this.counter = new client.Counter({
      ...meta,
      labelNames: [labelName],
      registers: [registry],
      collect() {
        for (const [value, n] of counts) this.inc({ [labelName]: value }, n);
        counts.clear();
      },
    });
  }

  add(value: string, n = 1): void {
    this.counts.set(value, (this.counts.get(value) ?? 0) + n);
  }
}

/**
 * A histogram observed on a hot path (every event published): values wait in a small buffer and
 * are observed when it is read or when the buffer is full, because prom-client's `observe` checks
 * labels and searches buckets on every call. The exposition is the same.
 */
export class Timings {
  readonly histogram: client.Histogram<string>;
  private readonly pending = new Float64Array(1024);
  private n = 0;

  constructor(config: { name: string; help: string; buckets: number[]; registry: client.Registry }) {
    const { registry, ...meta } = config;
    const flush = () => this.flush();
    this.histogram = new client.Histogram({ ...meta, registers: [registry], collect: flush });
  }

  observe(seconds: number): void {
    this.pending[this.n++] = seconds;
    if (this.n === this.pending.length) this.flush();
  }

  private flush(): void {
    for (let i = 0; i < this.n; i++) this.histogram.observe(this.pending[i]!);
    this.n = 0;
  }
}

/** Live readings taken at scrape time; wired once the store and bus exist. */
export interface Probes {
  /** The last background probe's reading (src/health/dependencies.ts), not a query per scrape. */
  databaseUp: () => boolean;
  busUp: () => boolean;
  busChannels: () => number;
  /** What HTTP answers being written hold (src/http/budget.ts). */
  httpHeld?: () => { bytes: number; fileReads: number };
  /** Whether /readyz would answer 200. */
  ready?: () => boolean;
  /** Bytes of publishes waiting for the bus connection or unacknowledged (0 for the in-process bus). */
  busQueueBytes?: () => number;
  presenceHeld?: () => number;
  /** Bytes of recent events kept for short resumes (src/chat/recent-events.ts). */
  resumeMemoryBytes?: () => number;
  /** Bytes held under the node-wide budget (src/chat/budget.ts): read at scrape, since it moves with every frame. */
  bufferBytes?: () => number;
}

/** Where a resume's events came from: none needed (the client was at the node's position), the node's recent events in memory, or the database. */
export const RESUME_SOURCES = ["none", "memory", "database"] as const;
export type ResumeSource = (typeof RESUME_SOURCES)[number];

/** Seconds, for replay waits and resumes: from a millisecond to the minute a storm of resumes can queue for. */
const RESUME_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80];

export function createMetrics() {
  const registry = new client.Registry();
  const probes: Probes = { databaseUp: () => false, busUp: () => false, busChannels: () => 0 };
  const stopSampling = defaultMetrics(registry);
  /** A gauge set at scrape from a live reading (a probe); undefined leaves it as it was. */
  const probed = (meta: { name: string; help: string }, read: () => number | undefined) =>
    new client.Gauge({
      ...meta,
      registers: [registry],
      collect() {
        const value = read();
        if (value !== undefined) this.set(value);
      },
    });
  const m = {
    registry,
    /** Stops the event-loop lag sampling (at shutdown: the process may host other nodes). */
    stop: stopSampling,
    /** Replaces the live readings behind the up/channel gauges. */
    setProbes(p: Partial<Probes>) {
      Object.assign(probes, p);
    },
    connections: new client.Gauge({ name: "chat_connections", help: "Open WebSocket connections on this node", registers: [registry] }),
    groups: new client.Gauge({ name: "chat_groups", help: "Groups with at least one socket on this node", registers: [registry] }),
    framesReceived: new Tally({
      name: "chat_frames_received_total",
      help: "Client frames received, by operation (invalid when missing or unknown)",
      labelName: "operation",
      registry,
    }),
    eventsPublished: new Tally({
      name: "chat_events_published_total",
      help: "Group events this node published to the bus, by operation",
      labelName: "operation",
      registry,
    }),
    errors: new client.Counter({
      name: "chat_errors_total",
      help: "Error frames sent, and WebSocket upgrades refused by a limit (429 rate_limited, 503 unavailable), by code",
      labelNames: ["code"],
      registers: [registry],
    }),
    limitHits: new client.Counter({
      name: "chat_limit_hits_total",
      help: "Times a configured limit refused a frame or an upgrade, or closed a socket, by limit",
      labelNames: ["limit"],
      registers: [registry],
    }),
    authFailures: new client.Counter({
      name: "chat_auth_failures_total",
      help: "Requests (WebSocket upgrades and HTTP) refused by identity: 401 bad or missing token, 403 not allowed, by status",
      labelNames: ["status"],
      registers: [registry],
    }),
    storeDuration: new client.Histogram({
      name: "chat_store_duration_seconds",
      help: "Time spent in the store per operation",
      labelNames: ["operation"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    busPublishDuration: new Timings({
      name: "chat_bus_publish_duration_seconds",
      help: "Time for the bus to accept a published event",
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registry,
    }),
    busQueueBytes: probed({ name: "chat_bus_queue_bytes", help: "Bytes of published events waiting for the Redis connection or not yet acknowledged by Redis (budget MAX_BUS_QUEUE_BYTES)" }, () => probes.busQueueBytes?.() ?? 0),
    busPublishesDropped: new client.Counter({
      name: "chat_bus_publishes_dropped_total",
      help: "Events not published because MAX_BUS_QUEUE_BYTES were already waiting (receivers read them back from the database)",
      registers: [registry],
    }),
    busChannels: probed({ name: "chat_bus_channels", help: "Bus channels (Redis: chat:<group>) this node is subscribed to" }, () => probes.busChannels()),
    dbUp: probed({ name: "chat_db_up", help: "1 when the database answered the node's last background ping (every second)" }, () => probes.databaseUp() ? 1 : 0),
    redisUp: probed({ name: "chat_redis_up", help: "1 when the event bus is connected (always 1 for the in-process bus)" }, () => probes.busUp() ? 1 : 0),
    tokenExpiries: new client.Counter({
      name: "chat_token_expiries_total",
      help: "Sockets closed with 4001 because their token expired (exp plus JWT_CLOCK_TOLERANCE_S) while they were open",
      registers: [registry],
    }),
    resuming: new client.Gauge({ name: "chat_resuming_subscriptions", help: "Subscriptions replaying (?since=) or waiting for this node to catch up before going live", registers: [registry] }),
    uploadBytes: new client.Counter({
      name: "chat_upload_bytes_total",
      help: "Bytes of uploads (frames and server-API bodies of 64 KiB or more) this node handed to the service, under MAX_UPLOAD_BYTES_PER_SECOND",
      registers: [registry],
    }),
    uploadInflightBytes: new client.Gauge({
      name: "chat_upload_inflight_bytes",
      help: "Bytes of uploads (frames and server-API bodies of 64 KiB or more) this node holds, from arrival until answered, under MAX_UPLOAD_INFLIGHT_BYTES",
      registers: [registry],
    }),
    bufferBytes: probed({ name: "chat_buffer_bytes", help: "Bytes held under the node-wide budget (MAX_NODE_BUFFER_BYTES): frames awaiting an answer plus events held for resuming subscriptions" }, () => probes.bufferBytes?.() ?? 0),
    replays: new client.Gauge({
      name: "chat_replays",
      help: "Replay reads running, or waiting for a slot (MAX_CONCURRENT_REPLAYS), by state",
      labelNames: ["state"],
      registers: [registry],
    }),
    replaySlotWait: new client.Histogram({
      name: "chat_replay_slot_wait_seconds",
      help: "Time each replay read (the group's last seq, or a page of events) waited for a slot (MAX_CONCURRENT_REPLAYS)",
      buckets: RESUME_BUCKETS,
      registers: [registry],
    }),
    replayRead: new client.Histogram({
      name: "chat_replay_read_seconds",
      help: "Time each replay read took once it held a slot (the database read and serialising the page)",
      buckets: RESUME_BUCKETS,
      registers: [registry],
    }),
    resumeDuration: new client.Histogram({
      name: "chat_resume_seconds",
      help: "A resume (?since=) from its subscription's start to its `resumed` marker, by where the events came from (none: the client was at the node's position; memory: the node's recent events; database)",
      labelNames: ["source"],
      buckets: RESUME_BUCKETS,
      registers: [registry],
    }),
    resumeMemoryBytes: probed({ name: "chat_resume_memory_bytes", help: "Bytes of the node's recent events kept in memory for short resumes (RESUME_MEMORY_BYTES, RESUME_MEMORY_GROUP_BYTES per group)" }, () => probes.resumeMemoryBytes?.() ?? 0),
    httpBufferBytes: probed({ name: "chat_http_buffer_bytes", help: "Bytes held by HTTP answers being written (history pages, file chunks); at most HTTP_BUFFER_BYTES" }, () => probes.httpHeld?.().bytes ?? 0),
    fileReads: probed({ name: "chat_file_reads", help: "File downloads being written; at most MAX_FILE_READS" }, () => probes.httpHeld?.().fileReads ?? 0),
    ready: probed({ name: "chat_ready", help: "1 when the node reports ready (/readyz answers 200)" }, () => (probes.ready ? (probes.ready() ? 1 : 0) : undefined)),
    presenceUsers: probed({ name: "chat_presence_users", help: "Distinct (group, user) pairs present through this node's sockets, grace included" }, () => probes.presenceHeld?.() ?? 0),
    presenceEvents: new client.Counter({
      name: "chat_presence_events_total",
      help: "Presence transitions this node decided, by event (join, leave) and whether they were broadcast (no: the group had more than PRESENCE_MAX_BROADCAST present users)",
      labelNames: ["event", "broadcast"],
      registers: [registry],
    }),
    storeWriteBatch: new client.Histogram({
      name: "chat_store_write_batch_items",
      help: "Creates per write batch (one database call and commit each): large batches under load are what keep PostgreSQL's CPU per create low",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    presenceBatchFrames: new client.Histogram({
      name: "chat_presence_batch_frames",
      help: "Join/leave frames a group's tick published together (PRESENCE_BATCH_MS): its sockets got them in one write each",
      buckets: [1, 2, 5, 10, 20, 50, 100, 500],
      registers: [registry],
    }),
    fleetNodes: new client.Gauge({ name: "chat_fleet_nodes", help: "Live nodes in the fleet as this node last read them from Redis (0 = unknown)", registers: [registry] }),
    fleetSockets: new client.Gauge({ name: "chat_fleet_sockets", help: "Open sockets over the whole fleet as this node last read them from Redis", registers: [registry] }),
    fleetWire: new client.Gauge({ name: "chat_fleet_wire", help: "The lowest bus wire version of the fleet's live nodes as this node last read them (2: presence ticks travel as bundles; 1: a node before bundles is live, frames go one by one; 0 = unknown)", registers: [registry] }),
    rebalanceClosed: new client.Counter({ name: "chat_rebalance_closed_total", help: "Sockets this node closed with 4012 because it held more than its fair share", registers: [registry] }),
    presenceLeaseRenewals: new client.Counter({ name: "chat_presence_lease_renewals_total", help: "Presence node-lease renewals in Redis", registers: [registry] }),
    presenceLeaseExpiries: new client.Counter({
      name: "chat_presence_lease_expiries_total",
      help: "Presence leases of other nodes that ran out and that this node reaped (their users left)",
      registers: [registry],
    }),
    presenceResyncs: new client.Counter({
      name: "chat_presence_resyncs_total",
      help: "Times this node re-registered its whole presence share in Redis, by reason (redis_restart, lease_lost, reconnect)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    draining: new client.Gauge({ name: "chat_draining", help: "1 while the node drains for shutdown", registers: [registry] }),
  };
  // Zero series for every label value up front: dashboards and alerts see 0, not "no data".
  for (const op of [...OPERATIONS, "invalid"]) m.framesReceived.counter.inc({ operation: op }, 0);
  for (const code of ERROR_CODES) m.errors.inc({ code }, 0);
  for (const limit of LIMITS) m.limitHits.inc({ limit }, 0);
  for (const status of ["401", "403"]) m.authFailures.inc({ status }, 0);
  for (const state of ["running", "waiting"]) m.replays.set({ state }, 0);
  for (const source of RESUME_SOURCES) m.resumeDuration.zero({ source });
  for (const event of ["join", "leave"]) for (const broadcast of ["yes", "no"]) m.presenceEvents.inc({ event, broadcast }, 0);
  return m;
}
