// A private Redis Cluster for one test file: 3 primaries and 3 replicas, real redis-server
// processes on free loopback ports (data port and cluster-bus port both chosen free), created with
// `redis-cli --cluster create … --cluster-replicas 1`. Nothing is persisted. Every process is
// killed by its PID at teardown. `cluster-node-timeout` is short so that a killed primary's
// replica is promoted within a few seconds, as a managed cluster does in tens of seconds.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import type { Test } from "tap";
import { freePort } from "./redis-server.ts";

const run = promisify(execFile);

export interface ClusterNodeProcess {
  port: number;
  busPort: number;
  child: ChildProcess;
  exited: Promise<void>;
  running(): boolean;
}

export interface PrivateRedisCluster {
  /** `127.0.0.1:p1,127.0.0.1:p2,…`: the value for REDIS_CLUSTER_NODES. */
  nodesEnv: string;
  nodes: ClusterNodeProcess[];
  /** The port of the primary currently serving `key`'s slot (asked of a live node). */
  primaryOf(key: string): Promise<number>;
  /** SIGKILLs the node on `port` (a crash); resolves once it exited. */
  kill(port: number): Promise<void>;
  /** Resolves once every live node reports cluster_state:ok and every slot has a live primary. */
  healthy(ms?: number): Promise<void>;
}

const NODE_TIMEOUT_MS = 1_000;

async function startNode(dir: string, port: number, busPort: number): Promise<ClusterNodeProcess> {
  const args = [
    "--port", String(port), "--cluster-port", String(busPort), "--bind", "127.0.0.1",
    "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${port}.conf`),
    "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
    // A replica may be promoted however stale it is: tests kill primaries on purpose.
    "--cluster-replica-validity-factor", "0",
    "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir,
  ];
  const child = spawn("redis-server", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const output: string[] = [];
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
    child.once("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`redis-server ${port} exited (${code ?? sig}) at start: ${output.join("")}`));
    });
  });
  return { port, busPort, child, exited, running: () => child.exitCode === null && child.signalCode === null };
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Starts a 3-primary/3-replica cluster; every process is killed at teardown. */
export async function privateRedisCluster(t: Test): Promise<PrivateRedisCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "chat-redis-cluster-"));
  const nodes: ClusterNodeProcess[] = [];
  t.teardown(async () => {
    for (const n of nodes) if (n.running()) n.child.kill("SIGKILL");
    await Promise.all(nodes.map((n) => n.exited));
    await rm(dir, { recursive: true, force: true });
  });
  const ports = await distinctFreePorts(12);
  for (let i = 0; i < 6; i++) nodes.push(await startNode(dir, ports[i]!, ports[i + 6]!));
  const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
  await run("redis-cli", ["--cluster", "create", ...addrs, "--cluster-replicas", "1", "--cluster-yes"], { timeout: 30_000 });

  const ask = async <T>(fn: (r: Redis) => Promise<T>): Promise<T> => {
    let last: unknown;
    for (const n of nodes.filter((x) => x.running())) {
      const r = new Redis(n.port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await r.connect();
        return await fn(r);
      } catch (err) {
        last = err;
      } finally {
        r.disconnect();
      }
    }
    throw new Error(`no live cluster node answered: ${(last as Error)?.message}`);
  };

  const healthy = async (ms = 20_000) => {
    const deadline = Date.now() + ms;
    let why = "";
    for (;;) {
      const live = nodes.filter((n) => n.running());
      const states = await Promise.all(
        live.map(async (n) => {
          const r = new Redis(n.port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
          try {
            await r.connect();
            const info = await r.cluster("INFO");
            const slots = (await r.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
            const covered = slots.reduce((s, [a, b, [, p]]) => s + (live.some((x) => x.port === Number(p)) ? b - a + 1 : 0), 0);
            return /cluster_state:ok/.test(String(info)) && covered === 16384 ? "" : `${n.port}: ${/cluster_state:\w+/.exec(String(info))?.[0]}, ${covered} slots on live primaries`;
          } catch (err) {
            return `${n.port}: ${(err as Error).message}`;
          } finally {
            r.disconnect();
          }
        }),
      );
      why = states.filter(Boolean).join("; ");
      if (!why) return;
      if (Date.now() > deadline) throw new Error(`Redis Cluster not healthy within ${ms} ms: ${why}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await healthy();

  const primaryOf = (key: string) =>
    ask(async (r) => {
      const slot = Number(await r.cluster("KEYSLOT", key));
      const slots = (await r.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
      const range = slots.find(([a, b]) => slot >= a && slot <= b);
      if (!range) throw new Error(`slot ${slot} is not served`);
      return Number(range[2][1]);
    });

  const kill = async (port: number) => {
    const n = nodes.find((x) => x.port === port);
    if (!n) throw new Error(`no cluster node on ${port}`);
    n.child.kill("SIGKILL");
    await n.exited;
  };

  return { nodesEnv: addrs.join(","), nodes, primaryOf, kill, healthy };
}
