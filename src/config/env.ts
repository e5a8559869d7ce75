// The node's whole configuration: one valibot schema over the environment. Every variable the
// service reads is named here and nowhere else (k8s manifests and docs are checked against it).
import { createPublicKey } from "node:crypto";
import * as v from "valibot";

const intVar = (def: number, min: number, max: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^\d+$/, "must be a whole number"),
      v.toNumber(),
      v.integer(),
      v.minValue(min, `must be at least ${min}`),
      v.maxValue(max, `must be at most ${max}`),
    ),
    String(def),
  );

const floatVar = (def: number, min: number, max: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^\d+(\.\d+)?$/, "must be a non-negative decimal number"),
      v.toNumber(),
      v.minValue(min, `must be at least ${min}`),
      v.maxValue(max, `must be at most ${max}`),
    ),
    String(def),
  );

const url = (schemes: readonly string[]) =>
  v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.nonEmpty("must not be empty"),
      v.check((s) => {
        try {
          return schemes.includes(new URL(s).protocol);
        } catch {
          return false;
        }
      }, `must be a URL starting with ${schemes.map((s) => `${s}//`).join(" or ")}`),
    ),
  );

/** PEM from an environment variable, where newlines are often written as `\n`. */
export const pemText = (s: string) => s.trim().replace(/\\n/g, "\n");

const publicKeyPem = v.optional(
  v.pipe(
    v.string(),
    v.transform(pemText),
    v.check((pem) => {
      try {
        return ["rsa", "ec", "ed25519"].includes(createPublicKey(pem).asymmetricKeyType ?? "");
      } catch {
        return false;
      }
    }, "must be a PEM public key (RSA, EC P-256/384/521 or Ed25519)"),
  ),
);

/** A comma-separated list of browser origins (`https://chat.example.com`), exactly as browsers send them. */
const originList = v.optional(
  v.pipe(
    v.string(),
    v.transform((s) => s.split(",").map((o) => o.trim().replace(/\/$/, "")).filter((o) => o !== "")),
    v.check((list) => list.length > 0, "must list at least one origin"),
    v.check(
      (list) =>
        list.every((o) => {
          try {
            return new URL(o).origin === o;
          } catch {
            return false;
          }
        }),
      "must be comma-separated origins like https://chat.example.com (scheme, host, optional port; no path)",
    ),
  ),
);

/** `host:port,host:port`: seed nodes of a Redis Cluster (the rest are discovered). */
const clusterNodes = v.optional(
  v.pipe(
    v.string(),
    v.transform((s) => s.split(",").map((x) => x.trim()).filter((x) => x !== "")),
    v.check((list) => list.length > 0, "must list at least one host:port"),
    v.check((list) => list.every((x) => /^[A-Za-z0-9.-]+:\d{1,5}$/.test(x) && Number(x.split(":")[1]) > 0 && Number(x.split(":")[1]) < 65536), "must be comma-separated host:port pairs like redis-0.redis:6379"),
    v.transform((list) => list.map((x) => ({ host: x.slice(0, x.lastIndexOf(":")), port: Number(x.slice(x.lastIndexOf(":") + 1)) }))),
  ),
);

export const EnvSchema = v.object({
  PORT: intVar(8000, 0, 65535),
  // Unset: 0.0.0.0 with a JWT key, 127.0.0.1 in open dev mode (see listenHost).
  HOST: v.optional(v.pipe(v.string(), v.trim(), v.nonEmpty("must not be empty"))),
  DATABASE_URL: url(["postgres:", "postgresql:"]),
  DATA_DIR: v.optional(v.pipe(v.string(), v.nonEmpty("must not be empty")), "./data"),
  REDIS_URL: url(["redis:", "rediss:"]),
  REDIS_CLUSTER_NODES: clusterNodes,
  REDIS_CLUSTER_PASSWORD: v.optional(v.pipe(v.string(), v.nonEmpty("must not be empty"))),
  REDIS_CLUSTER_TLS: v.optional(v.pipe(v.picklist(["0", "1"], "must be 0 or 1"), v.transform((s) => s === "1")), "0"),
  MAX_BODY_CHARS: intVar(4000, 1, 1_000_000),
  MAX_FILE_BYTES: intVar(5 * 1024 * 1024, 1, 1024 * 1024 * 1024),
  MAX_FRAME_BYTES: intVar(8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  MAX_PENDING_FRAMES: intVar(256, 1, 100_000),
  MAX_FRAMES_PER_SECOND: intVar(500, 1, 1_000_000),
  MAX_FRAMES_BURST: intVar(1000, 1, 1_000_000),
  MAX_USER_FRAMES_PER_SECOND: intVar(1000, 1, 1_000_000),
  MAX_SOCKETS_PER_USER: intVar(20, 1, 1_000_000),
  MAX_GROUPS_PER_NODE: intVar(10_000, 1, 10_000_000),
  /** Groups one `/ws/` socket may follow at once; one more `subscribe` is `too_large`. */
  MAX_SUBSCRIPTIONS_PER_SOCKET: intVar(500, 1, 100_000),
  IDLE_TIMEOUT_S: intVar(120, 8, 960),
  MAX_BACKPRESSURE_BYTES: intVar(16 * 1024 * 1024, 1024 * 1024, 1024 * 1024 * 1024),
  MAX_PENDING_BYTES: intVar(16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  MAX_HELD_BYTES: intVar(8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  MAX_REPLAY_BUFFER_BYTES: intVar(1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
  MAX_CONCURRENT_REPLAYS: intVar(4, 1, 10_000),
  // The node's recent events kept in memory for short resumes (src/chat/recent-events.ts); 0: none.
  RESUME_MEMORY_GROUP_BYTES: intVar(256 * 1024, 0, 1024 * 1024 * 1024),
  RESUME_MEMORY_BYTES: intVar(32 * 1024 * 1024, 0, 64 * 1024 * 1024 * 1024),
  MAX_NODE_BUFFER_BYTES: intVar(128 * 1024 * 1024, 1024 * 1024, 64 * 1024 * 1024 * 1024),
  // Uploads (frames of 64 KiB or more) per second, node-wide and per user (src/gateway/upload-budget.ts says why these defaults).
  MAX_UPLOAD_BYTES_PER_SECOND: intVar(8 * 1024 * 1024, 64 * 1024, 64 * 1024 * 1024 * 1024),
  MAX_USER_UPLOAD_BYTES_PER_SECOND: intVar(4 * 1024 * 1024, 64 * 1024, 64 * 1024 * 1024 * 1024),
  // Upload bytes held at once, from a frame's (or body's) arrival until it is answered (the same file).
  MAX_UPLOAD_INFLIGHT_BYTES: intVar(24 * 1024 * 1024, 64 * 1024, 64 * 1024 * 1024 * 1024),
  JWT_SECRET: v.optional(v.pipe(v.string(), v.nonEmpty("must not be empty"))),
  JWT_PUBLIC_KEY: publicKeyPem,
  JWT_JWKS_URL: url(["https:", "http:"]),
  JWT_ISSUER: v.optional(v.pipe(v.string(), v.trim(), v.nonEmpty("must not be empty"))),
  JWT_AUDIENCE: v.optional(v.pipe(v.string(), v.trim(), v.nonEmpty("must not be empty"))),
  JWT_CLOCK_TOLERANCE_S: intVar(30, 0, 3600),
  ALLOWED_ORIGINS: originList,
  ORDER_GAP_WAIT_MS: intVar(100, 1, 60_000),
  WRITE_CONCURRENCY: intVar(4, 1, 64),
  WRITE_BATCH_LINGER_MS: intVar(5, 0, 1_000),
  DATABASE_POOL_SIZE: intVar(10, 1, 1000),
  STORE_TIMEOUT_MS: intVar(5_000, 100, 120_000),
  MAX_BUS_QUEUE_BYTES: intVar(16 * 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
  RETRY_WINDOW_S: intVar(86_400, 0, 30 * 86_400),
  PRESENCE_GRACE_MS: intVar(5_000, 0, 600_000),
  PRESENCE_TTL_S: intVar(15, 1, 3_600),
  PRESENCE_MAX_BROADCAST: intVar(1_000, 0, 10_000_000),
  PRESENCE_BATCH_MS: intVar(250, 0, 10_000),
  PRESENCE_BUSY_BATCH_MS: intVar(1_000, 0, 10_000),
  PRESENCE: v.optional(v.picklist(["on", "off"], "must be on or off"), "on"),
  DRAIN_DELAY_MS: intVar(0, 0, 600_000),
  DRAIN_SPREAD_MS: intVar(5_000, 0, 600_000),
  REBALANCE_TOLERANCE: floatVar(0.1, 0, 10),
  REBALANCE_RATE: floatVar(0.05, 0, 1),
  REBALANCE_MIN_SOCKETS: intVar(100, 1, 10_000_000),
  SHUTDOWN_TIMEOUT_MS: intVar(10_000, 100, 600_000),
  // HTTP answers being written, node-wide (src/http/budget.ts).
  MAX_FILE_READS: intVar(32, 1, 100_000),
  HTTP_BUFFER_BYTES: intVar(32 * 1024 * 1024, 1024 * 1024, 1024 * 1024 * 1024),
  // Probes and metrics (src/http/probes.ts, src/health/).
  METRICS_PORT: v.optional(v.pipe(v.string(), v.trim(), v.regex(/^\d+$/, "must be a whole number"), v.toNumber(), v.integer(), v.minValue(0, "must be at least 0"), v.maxValue(65535, "must be at most 65535"))),
  READY_MAX_LOOP_DELAY_MS: intVar(5_000, 50, 600_000),
  SERVER_API_KEYS: v.optional(
    v.pipe(
      v.string(),
      v.transform((s) => s.split(",").map((k) => k.trim()).filter((k) => k !== "")),
      v.check((keys) => keys.length > 0, "must list at least one key"),
      v.check((keys) => keys.every((k) => k.length >= 16 && /^[\x21-\x7e]+$/.test(k)), "each key must be at least 16 printable ASCII characters without spaces"),
    ),
  ),
  WEBHOOK_URL: url(["http:", "https:"]),
  WEBHOOK_SECRET: v.optional(v.pipe(v.string(), v.minLength(16, "must be at least 16 characters"))),
  WEBHOOK_TIMEOUT_MS: intVar(5_000, 100, 60_000),
  WEBHOOK_MAX_ATTEMPTS: intVar(20, 1, 1_000),
  WEBHOOK_BACKOFF_BASE_MS: intVar(500, 1, 600_000),
  WEBHOOK_BACKOFF_MAX_MS: intVar(60_000, 1, 86_400_000),
  WEBHOOK_CONCURRENCY: intVar(16, 1, 1_000),
  WEBHOOK_POLL_MS: intVar(500, 10, 60_000),
  LOG_LEVEL: v.optional(v.picklist(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info"),
  NODE_ENV: v.optional(v.string(), "development"),
});

export type Config = v.InferOutput<typeof EnvSchema>;

export class ConfigError extends Error {}

/** Parses the environment; a bad value throws one line naming the variable and what is wrong. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Treat empty strings as unset, as shells and manifests often export VAR= for "no value".
  const present = Object.fromEntries(
    Object.keys(EnvSchema.entries)
      .map((k) => [k, env[k]] as const)
      .filter(([, val]) => val !== undefined && val !== ""),
  );
  const result = v.safeParse(EnvSchema, present);
  if (result.success) return result.output;
  const issue = result.issues[0];
  const name = issue.path?.map((p) => String(p.key)).join(".") ?? "environment";
  const got = /SECRET|PASSWORD|KEYS/.test(name) ? "[redacted]" : JSON.stringify(present[name] ?? "");
  throw new ConfigError(`invalid configuration: ${name} ${issue.message} (got ${got})`);
}

/** JWT mode: at least one key is configured, and every connection must carry a valid token. */
export const jwtConfigured = (c: Config): boolean => Boolean(c.JWT_SECRET || c.JWT_PUBLIC_KEY || c.JWT_JWKS_URL);

/**
 * Where the node listens: HOST when set; otherwise every interface in JWT mode, and only the
 * loopback in open dev mode, where anyone who can connect may act as anyone.
 */
export const listenHost = (c: Config): string => c.HOST ?? (jwtConfigured(c) ? "0.0.0.0" : "127.0.0.1");

/**
 * Rules across variables, checked at start before anything listens (not by loadConfig, which
 * `npm run migrate` shares). Throws one line naming what to fix.
 */
export function checkStartup(c: Config): void {
  if (Boolean(c.WEBHOOK_URL) !== Boolean(c.WEBHOOK_SECRET)) {
    throw new ConfigError("invalid configuration: set WEBHOOK_URL and WEBHOOK_SECRET together (webhooks are always signed)");
  }
  if (c.REDIS_URL && c.REDIS_CLUSTER_NODES) {
    throw new ConfigError("invalid configuration: set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both");
  }
  if (c.JWT_PUBLIC_KEY && c.JWT_JWKS_URL) {
    throw new ConfigError("invalid configuration: set JWT_PUBLIC_KEY or JWT_JWKS_URL, not both (a JWKS already carries every current key)");
  }
  if (!jwtConfigured(c)) {
    const orphan = c.JWT_ISSUER ? "JWT_ISSUER" : c.JWT_AUDIENCE ? "JWT_AUDIENCE" : null;
    if (orphan) throw new ConfigError(`invalid configuration: ${orphan} is set but no JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL is, so no token would be checked`);
    if (c.NODE_ENV === "production") {
      throw new ConfigError("refusing to start: NODE_ENV=production needs JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL (without one, anyone can connect as any user)");
    }
  }
  if (c.METRICS_PORT !== undefined && c.METRICS_PORT !== 0 && c.METRICS_PORT === c.PORT) {
    throw new ConfigError("invalid configuration: METRICS_PORT must differ from PORT (unset it to serve probes and metrics on PORT)");
  }
  if (c.NODE_ENV === "production" && c.JWT_SECRET !== undefined && Buffer.byteLength(c.JWT_SECRET) < 32) {
    throw new ConfigError("refusing to start: JWT_SECRET must be at least 32 bytes with NODE_ENV=production (HS256 needs a 256-bit key)");
  }
}
