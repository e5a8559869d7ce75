// A local multi-replica cluster on loopback, mirroring k8s/base: N chat nodes (real processes,
// `node dist/main.js`, the compiled build, rebuilt first when stale) sharing one PostgreSQL and one Redis, behind HAProxy, which
// plays the Service: one port, new connections spread over the nodes whose /readyz answers
// 200. Nodes can be added and stopped (SIGTERM drains them, as in a rollout) while clients
// are connected. Used by `npm run cluster` (scripts/cluster/main.ts) and test/cluster/.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { buildIfStale } from "../build.mjs";
import { findHaproxy, HaproxyProcess, renderConfig, serverOptions, type HealthCheck, type ServerStat } from "./haproxy.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BACKEND = "chat";

export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";
export const DEFAULT_PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";

export interface ClusterOptions {
  /** Replicas to start with. Default 3. */
  nodes?: number;
  /** Loopback address everything binds to. Default 127.0.0.1. */
  host?: string;
  /** The load balancer's port; 0 picks a free one. Default 0. */
  port?: number;
  /** HAProxy's stats page on this port (off when unset). */
  statsPort?: number;
  /** PostgreSQL database every node shares. Default $DATABASE_URL, else `chatroom_cluster` on $PG_ADMIN_URL (created if missing). */
  databaseUrl?: string;
  /** Default $REDIS_URL, else redis://127.0.0.1:6379. */
  redisUrl?: string;
  /** How long a node keeps serving with /readyz 503 after SIGTERM, so HAProxy's check sees it first. Default 1000. */
  drainDelayMs?: number;
  /** HAProxy's /readyz check. Default every 500 ms, out after 1 failure, back after 1 success. */
  check?: Partial<HealthCheck>;
  /** Extra environment for every node (JWT_SECRET, MAX_*, …). */
  env?: Record<string, string | undefined>;
  /** Every line a node prints (source is the node's name) and cluster events (source "cluster"). */
  onLog?: (source: string, line: string) => void;
  /** Every line HAProxy prints: one per finished session, with its termination flags (what tells a proxy-side close from a node-side one). */
  onHaproxyLog?: (line: string) => void;
  /** How long a node may take to print "listening". Default 60 s (a busy machine compiles TypeScript slowly). */
  startTimeoutMs?: number;
}

export type NodeState = "starting" | "serving" | "stopping" | "exited";

export class ClusterNode {
  state: NodeState = "starting";
  /** Set when the cluster stops the node on purpose. */
  stopRequested = false;
  port = 0;
  /** The last lines the node printed (stdout JSON logs and stderr), for diagnostics. */
  readonly logs: string[] = [];
  readonly exited: Promise<number | string>;
  exitCode: number | string | null = null;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => {
        this.state = "exited";
        this.exitCode = code ?? signal ?? -1;
        resolve(this.exitCode);
      }),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  remember(line: string): void {
    this.logs.push(line);
    if (this.logs.length > 300) this.logs.shift();
  }
}

/** A free TCP port on `host` (closed again before HAProxy binds it; HAProxy's start is retried if it races). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Creates database `name` on the server of `adminUrl` unless it exists (`fresh`: drop it first); returns its URL. */
export async function ensureDatabase(adminUrl: string, name: string, opts: { fresh?: boolean } = {}): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${JSON.stringify(name)}: use lower-case letters, digits and _`);
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3_000 });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`PostgreSQL is required at ${adminUrl} and is not reachable (${(err as Error).message})`);
  }
  try {
    if (opts.fresh) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** `setpriv --pdeathsig KILL`, when available: children die with this process even if it is SIGKILLed. */
const PDEATHSIG = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
const spawnVia = PDEATHSIG ? [PDEATHSIG, "--pdeathsig", "KILL"] : [];

export class Cluster {
  readonly nodes: ClusterNode[] = [];
  private haproxy!: HaproxyProcess;
  private haproxyBin = "";
  private configFile = "";
  private seq = 0;
  private stopping: Promise<void> | null = null;
  private readonly killAll = () => {
    for (const n of this.nodes) if (n.running) n.child.kill("SIGKILL");
    if (this.haproxy?.running) this.haproxy.child.kill("SIGKILL");
  };

  private constructor(
    readonly host: string,
    public port: number,
    readonly statsPort: number | undefined,
    readonly databaseUrl: string,
    readonly redisUrl: string,
    readonly haproxyVersion: string,
    readonly workDir: string,
    private readonly opts: ClusterOptions,
    readonly check: HealthCheck,
  ) {}

  /** Starts the nodes, then HAProxy in front of them. Throws (naming HAProxy) if it is not installed. */
  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const { bin, version } = findHaproxy(); // first: fail loudly before starting anything
    await buildIfStale(); // the nodes run what production runs: dist/main.js
    const host = opts.host ?? "127.0.0.1";
    const databaseUrl = opts.databaseUrl ?? process.env.DATABASE_URL ?? (await ensureDatabase(process.env.PG_ADMIN_URL ?? DEFAULT_PG_ADMIN_URL, "chatroom_cluster"));
    const redisUrl = opts.redisUrl ?? process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
    const check: HealthCheck = { interMs: 500, fall: 1, rise: 1, ...opts.check };
    const workDir = await mkdtemp(path.join(os.tmpdir(), "chatroom-cluster-"));
    const cluster = new Cluster(host, opts.port ?? 0, opts.statsPort, databaseUrl, redisUrl, version, workDir, opts, check);
    cluster.haproxyBin = bin;
    cluster.configFile = path.join(workDir, "haproxy.cfg");
    process.on("exit", cluster.killAll);
    try {
      await Promise.all(Array.from({ length: opts.nodes ?? 3 }, () => cluster.spawnNode()));
      await cluster.startHaproxy();
      for (const n of cluster.nodes) n.state = "serving";
      await cluster.waitUntil(async () => (await cluster.servers()).every((s) => s.up && s.check === "L7OK"), 15_000, "HAProxy to find every node ready");
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** The load balancer's address, e.g. http://127.0.0.1:8080. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** A WebSocket URL for a group through the load balancer. */
  wsUrl(group: string, query: Record<string, string> = {}): string {
    const q = new URLSearchParams(query).toString();
    return `ws://${this.host}:${this.port}/ws/chat/${encodeURIComponent(group)}/${q ? `?${q}` : ""}`;
  }

  /** The nodes that are starting or serving (not stopping or gone), oldest first. */
  get live(): ClusterNode[] {
    return this.nodes.filter((n) => n.state === "starting" || n.state === "serving");
  }

  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node named ${name} (nodes: ${this.nodes.map((x) => x.name).join(", ")})`);
    return n;
  }

  private log(line: string): void {
    this.opts.onLog?.("cluster", line);
  }

  /** Starts one node process and resolves once it prints its "listening" line. */
  private spawnNode(): Promise<ClusterNode> {
    const name = `n${++this.seq}`;
    const extra = this.opts.env ?? {};
    // The node logs its port at info level; a quieter LOG_LEVEL would hide it.
    const level = extra.LOG_LEVEL && ["debug", "trace"].includes(extra.LOG_LEVEL) ? extra.LOG_LEVEL : "info";
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: process.env.TMPDIR,
      DRAIN_DELAY_MS: String(this.opts.drainDelayMs ?? 1000),
      ...extra,
      PORT: "0",
      HOST: this.host,
      LOG_LEVEL: level,
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redisUrl,
    };
    const argv = [...spawnVia, process.execPath, "dist/main.js"];
    // Own process group: a Ctrl-C in the terminal reaches the orchestrator only, which drains the nodes in order.
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const node = new ClusterNode(name, child);
    this.nodes.push(node);
    const onLine = (line: string) => {
      node.remember(line);
      this.opts.onLog?.(name, line);
    };
    createInterface({ input: child.stderr! }).on("line", onLine);
    const ms = this.opts.startTimeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`node ${name} did not start within ${ms} ms; its output:\n${node.logs.join("\n")}`));
      }, ms);
      createInterface({ input: child.stdout! }).on("line", (line) => {
        onLine(line);
        if (node.port) return;
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg === "listening" && entry.port) {
            node.port = entry.port;
            clearTimeout(timer);
            this.log(`${name} (pid ${child.pid}) listening on ${this.host}:${node.port}`);
            resolve(node);
          }
        } catch {
          // not JSON: kept in the logs only
        }
      });
      void node.exited.then((code) => {
        if (node.port) {
          if (!node.stopRequested) this.log(`${name} exited unexpectedly (${code})`);
          return;
        }
        clearTimeout(timer);
        reject(new Error(`node ${name} exited (${code}) before listening; its output:\n${node.logs.join("\n")}`));
      });
    });
  }

  /** The configuration as it stands: every node that has not been deregistered. */
  private async writeConfig(): Promise<void> {
    const servers = this.nodes.filter((n) => n.port && n.state !== "exited").map((n) => ({ name: n.name, host: this.host, port: n.port }));
    const cfg = renderConfig({
      host: this.host,
      port: this.port,
      statsPort: this.statsPort,
      adminSocket: path.join(this.workDir, "admin.sock"),
      check: this.check,
      servers,
    });
    await writeFile(this.configFile, cfg);
  }

  private async startHaproxy(): Promise<void> {
    const fixed = this.port !== 0;
    for (let attempt = 1; ; attempt++) {
      if (!fixed) this.port = await freePort(this.host);
      await this.writeConfig();
      try {
        this.haproxy = await HaproxyProcess.start(this.haproxyBin, this.configFile, path.join(this.workDir, "admin.sock"), spawnVia, this.opts.onHaproxyLog);
        this.log(`haproxy ${this.haproxyVersion} (pid ${this.haproxy.child.pid}) on ${this.url}, config ${this.configFile}`);
        return;
      } catch (err) {
        // Another process may have taken the free port between the probe and HAProxy's bind.
        if (fixed || attempt >= 3 || !/cannot bind|Address already in use/i.test((err as Error).message)) throw err;
      }
    }
  }

  /** HAProxy's view of the backends: status, last check, open connections. */
  servers(): Promise<ServerStat[]> {
    return this.haproxy.servers(BACKEND);
  }

  /** A command on HAProxy's runtime API (`show stat`, `show servers conn chat`, …). */
  haproxyCommand(cmd: string): Promise<string> {
    return this.haproxy.command(cmd);
  }

  /** HAProxy's recent output. */
  get haproxyOutput(): string[] {
    return this.haproxy?.output ?? [];
  }

  private async waitUntil(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Starts one more node and adds it to the running load balancer (runtime API, no reload, so
   * established sockets are untouched); resolves once HAProxy's check has found it ready.
   */
  async addNode(): Promise<ClusterNode> {
    const node = await this.spawnNode();
    const id = `${BACKEND}/${node.name}`;
    await this.haproxy.expect(`add server ${id} ${this.host}:${node.port} ${serverOptions(this.check)}`, /New server registered/);
    await this.haproxy.expect(`enable health ${id}`, /^$/);
    await this.haproxy.expect(`enable server ${id}`, /^$/);
    node.state = "serving";
    await this.writeConfig();
    // A new server counts as up at once; wait for its first passed check of /readyz.
    await this.waitUntil(async () => (await this.servers()).some((s) => s.name === node.name && s.up && s.check === "L7OK"), 15_000, `HAProxy to find ${node.name} ready`);
    this.log(`${node.name} added to the load balancer`);
    return node;
  }

  /**
   * Sends `signal` to a node, waits for it to exit, then removes it from the load balancer.
   * With SIGTERM the node drains: /readyz turns 503 (HAProxy's next check takes it out of
   * rotation), after DRAIN_DELAY_MS it closes its sockets with 1001 and exits 0. Resolves
   * with the exit code (or the signal's name for SIGKILL).
   */
  async stopNode(which: ClusterNode | string, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<number | string> {
    const node = typeof which === "string" ? this.node(which) : which;
    if (node.running) {
      node.state = "stopping";
      node.stopRequested = true;
      this.log(`${node.name}: ${signal}`);
      node.child.kill(signal);
      const timer = setTimeout(() => {
        this.log(`${node.name} did not exit within ${timeoutMs} ms; SIGKILL`);
        node.child.kill("SIGKILL");
      }, timeoutMs);
      await node.exited;
      clearTimeout(timer);
    }
    await this.deregister(node);
    this.log(`${node.name} exited (${node.exitCode}) and left the load balancer`);
    return node.exitCode!;
  }

  private async deregister(node: ClusterNode): Promise<void> {
    if (!this.haproxy?.running) return;
    const id = `${BACKEND}/${node.name}`;
    if (!(await this.servers()).some((s) => s.name === node.name)) return;
    await this.haproxy.expect(`set server ${id} state maint`, /^$/);
    await this.haproxy.command(`shutdown sessions server ${id}`);
    // `del server` refuses while HAProxy still holds a connection to the server; they go quickly once it is gone.
    await this.waitUntil(async () => /Server deleted/.test(await this.haproxy.command(`del server ${id}`)), 5_000, `HAProxy to delete ${id}`);
    await this.writeConfig();
  }

  /** Stops every node (SIGTERM, so they drain; SIGKILL after `timeoutMs`), then HAProxy, and removes the work directory. */
  stop(opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<void> {
    return (this.stopping ??= (async () => {
      const signal = opts.signal ?? "SIGTERM";
      const timeoutMs = opts.timeoutMs ?? 15_000;
      await Promise.all(
        this.nodes.filter((n) => n.running).map(async (n) => {
          n.state = "stopping";
          n.stopRequested = true;
          n.child.kill(signal);
          const timer = setTimeout(() => n.child.kill("SIGKILL"), timeoutMs);
          await n.exited;
          clearTimeout(timer);
        }),
      );
      await this.haproxy?.stop();
      process.off("exit", this.killAll);
      await rm(this.workDir, { recursive: true, force: true });
    })());
  }
}

/** A group name nobody else uses. */
export const uniqueName = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;
