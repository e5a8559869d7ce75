// Private redis-server processes on free loopback ports, outside any test framework: one
// standalone server, or a 3-primary/3-replica Redis Cluster (`redis-cli --cluster create …
// --cluster-replicas 1`). Nothing is persisted. Used by test/helpers/redis-cluster.ts (which
// stops them at teardown) and by the bench (bench/scenarios/cross-node.ts), which reads each
// process's CPU from /proc by its pid. Guarantee: `stop()` SIGKILLs every process it started, by
// PID, and resolves once they exited and their directory is gone; a process that fails to start
// is killed before the error is thrown.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";

const run = promisify(execFile);

/** A TCP port nobody listens on right now (the OS picks it; released before returning). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freeLoopbackPort());
  return [...ports];
}

export interface RedisProcess {
  port: number;
  pid: number;
  child: ChildProcess;
  exited: Promise<void>;
  running(): boolean;
}

/** Starts `redis-server <args>` in `dir` and resolves once it accepts connections. */
async function spawnRedis(dir: string, port: number, extra: string[]): Promise<RedisProcess> {
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, ...extra];
  const child = spawn("redis-server", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const output: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server ${port} not ready in 10 s: ${output.join("")}`)), 10_000);
      const onData = (b: Buffer) => {
        output.push(b.toString());
        if (/Ready to accept connections/.test(b.toString())) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`redis-server could not be started (${err.message}): is it installed?`));
      });
      child.once("exit", (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`redis-server ${port} exited (${code ?? sig}) at start: ${output.join("")}`));
      });
    });
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  // Drained, or a chatty server would block on a full pipe.
  child.stdout!.resume();
  child.stderr!.resume();
  return { port, pid: child.pid!, child, exited, running: () => child.exitCode === null && child.signalCode === null };
}

async function killAll(procs: RedisProcess[], dir: string): Promise<void> {
  for (const p of procs) if (p.running()) p.child.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  await rm(dir, { recursive: true, force: true });
}

export interface StandaloneRedis {
  url: string;
  process: RedisProcess;
  stop(): Promise<void>;
}

/** One private redis-server. */
export async function startStandaloneRedis(): Promise<StandaloneRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "chat-redis-"));
  const port = await freeLoopbackPort();
  let proc: RedisProcess;
  try {
    proc = await spawnRedis(dir, port, []);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { url: `redis://127.0.0.1:${port}`, process: proc, stop: () => killAll([proc], dir) };
}

export interface RedisClusterProcesses {
  /** `127.0.0.1:p1,127.0.0.1:p2,…`: the value for REDIS_CLUSTER_NODES. */
  nodesEnv: string;
  nodes: RedisProcess[];
  /** The port of the primary currently serving `key`'s slot (asked of a live node). */
  primaryOf(key: string): Promise<number>;
  /** SIGKILLs the node on `port` (a crash); resolves once it exited. */
  kill(port: number): Promise<void>;
  /** Resolves once every live node reports cluster_state:ok and every slot has a live primary. */
  healthy(ms?: number): Promise<void>;
  /** The ports of the nodes that are primaries now. */
  primaries(): Promise<number[]>;
  stop(): Promise<void>;
}

/** `cluster-node-timeout`: short, so that a killed primary's replica is promoted within seconds. */
const NODE_TIMEOUT_MS = 1_000;

type SlotRange = [number, number, [string, number], ...unknown[]];

/** Starts a 3-primary/3-replica cluster and waits until it is healthy. */
export async function startRedisCluster(): Promise<RedisClusterProcesses> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "chat-redis-cluster-"));
  const nodes: RedisProcess[] = [];
  const stop = () => killAll(nodes, dir);
  try {
    const ports = await distinctFreePorts(12);
    for (let i = 0; i < 6; i++) {
      nodes.push(
        await spawnRedis(dir, ports[i]!, [
          "--cluster-port", String(ports[i + 6]),
          "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${ports[i]}.conf`),
          "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
          // A replica may be promoted however stale it is: tests kill primaries on purpose.
          "--cluster-replica-validity-factor", "0",
        ]),
      );
    }
    const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run("redis-cli", ["--cluster", "create", ...addrs, "--cluster-replicas", "1", "--cluster-yes"], { timeout: 30_000 });
  } catch (err) {
    await stop();
    throw err;
  }

  const connect = async (port: number) => {
    const r = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    await r.connect();
    return r;
  };
  const ask = async <T>(fn: (r: Redis) => Promise<T>): Promise<T> => {
    let last: unknown;
    for (const n of nodes.filter((x) => x.running())) {
      let r: Redis | undefined;
      try {
        r = await connect(n.port);
        return await fn(r);
      } catch (err) {
        last = err;
      } finally {
        r?.disconnect();
      }
    }
    throw new Error(`no live cluster node answered: ${(last as Error)?.message}`);
  };

  const healthy = async (ms = 20_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const live = nodes.filter((n) => n.running());
      const states = await Promise.all(
        live.map(async (n) => {
          let r: Redis | undefined;
          try {
            r = await connect(n.port);
            const info = String(await r.cluster("INFO"));
            const slots = (await r.cluster("SLOTS")) as unknown as SlotRange[];
            const covered = slots.reduce((s, [a, b, [, p]]) => s + (live.some((x) => x.port === Number(p)) ? b - a + 1 : 0), 0);
            return /cluster_state:ok/.test(info) && covered === 16384 ? "" : `${n.port}: ${/cluster_state:\w+/.exec(info)?.[0]}, ${covered} slots on live primaries`;
          } catch (err) {
            return `${n.port}: ${(err as Error).message}`;
          } finally {
            r?.disconnect();
          }
        }),
      );
      const why = states.filter(Boolean).join("; ");
      if (!why) return;
      if (Date.now() > deadline) throw new Error(`Redis Cluster not healthy within ${ms} ms: ${why}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await healthy();
  } catch (err) {
    await stop();
    throw err;
  }

  const primaryOf = (key: string) =>
    ask(async (r) => {
      const slot = Number(await r.cluster("KEYSLOT", key));
      const slots = (await r.cluster("SLOTS")) as unknown as SlotRange[];
      const range = slots.find(([a, b]) => slot >= a && slot <= b);
      if (!range) throw new Error(`slot ${slot} is not served`);
      return Number(range[2][1]);
    });
  const primaries = () => ask(async (r) => [...new Set(((await r.cluster("SLOTS")) as unknown as SlotRange[]).map((s) => Number(s[2][1])))].sort((a, b) => a - b));
  const kill = async (port: number) => {
    const n = nodes.find((x) => x.port === port);
    if (!n) throw new Error(`no cluster node on ${port}`);
    n.child.kill("SIGKILL");
    await n.exited;
  };
  return { nodesEnv: nodes.map((n) => `127.0.0.1:${n.port}`).join(","), nodes, primaryOf, kill, healthy, primaries, stop };
}
