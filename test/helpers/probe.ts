// Small probes for tests that watch a node from outside: HTTP status on a fresh connection,
// whether a port still accepts connections, polling until a condition holds, and temp dirs.
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { Test } from "tap";

/** A group name no other test (or parallel test file sharing Redis) uses. */
export const uniqueGroup = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;

/** GET on a new connection (no keep-alive pool): the status, or the connection error's code. */
export function httpGet(port: number, pathname: string, ms = 2_000): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: pathname, agent: false, timeout: ms }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** The HTTP status of a GET, or 0 when the connection failed. */
export async function statusOf(port: number, pathname: string): Promise<number> {
  const r = await httpGet(port, pathname);
  return "status" in r ? r.status : 0;
}

/** Whether a TCP connection to the port is accepted. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Polls `check` every `every` ms until it returns true; false if `ms` passed first. */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 2_000, every = 25): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A gauge or counter value from a node's /metrics (first sample with that name and labels). */
export async function metric(port: number, name: string): Promise<number | null> {
  const r = await httpGet(port, "/metrics");
  if (!("status" in r) || r.status !== 200) return null;
  const line = r.body.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** A new empty directory, removed at teardown (after anything registered later, e.g. a node using it). */
export async function tempDir(t: Test, prefix = "chat-test-"): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true, maxRetries: 3 }));
  return dir;
}

/** Resolves with the value, or rejects naming `what`, after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * Waits until the node answers /readyz with 200, as a load balancer would before routing to it.
 * /readyz does not read the database (any more): to warm the pool, see untilDatabaseWarm.
 */
export async function untilReady(port: number, ms = 15_000): Promise<void> {
  if (!(await eventually(async () => (await statusOf(port, "/readyz")) === 200, ms, 100))) {
    throw new Error(`node on port ${port} not ready within ${ms} ms: ${JSON.stringify(await httpGet(port, "/readyz"))}`);
  }
}

/**
 * Waits until the node answers a database read over HTTP (a members list), so that its pool is
 * warm: on a loaded machine the first read of a fresh node can outlast the 5 s a socket's join
 * may wait, and that upgrade is refused with 503; and that first work (pool, query compiler)
 * blocks an in-process node's event loop, the test's own, for seconds. /readyz no longer reads
 * the database. `token`: for a node in JWT mode.
 */
export async function untilDatabaseWarm(port: number, opts: { token?: string; ms?: number } = {}): Promise<void> {
  const ms = opts.ms ?? 30_000;
  const who = opts.token === undefined ? "user=warm-up" : `token=${encodeURIComponent(opts.token)}`;
  if (!(await eventually(async () => (await statusOf(port, `/api/groups/warm-up/members?${who}`)) === 200, ms, 100))) {
    throw new Error(`node on port ${port} did not answer a database read within ${ms} ms`);
  }
}

/**
 * For a node spawned with `{ waitListening: false }`: waits for its "listening" line and returns
 * its port. For slow starts (embedded PGlite creates its database on first start, which takes many
 * seconds on a loaded machine) that spawnNode's own 30 s would cut short.
 */
export async function listeningPort(node: { logs: Record<string, unknown>[]; stderr: string[]; exited: Promise<number | string> }, ms = 90_000): Promise<number> {
  let exit: number | string | null = null;
  void node.exited.then((code) => (exit = code));
  const find = () => node.logs.find((l) => l.msg === "listening");
  await eventually(() => find() !== undefined || exit !== null, ms, 50);
  const entry = find();
  if (!entry) throw new Error(`node did not listen within ${ms} ms (exit: ${exit}); stderr: ${node.stderr.join("\n")}; stdout: ${JSON.stringify(node.logs)}`);
  return Number(entry.port);
}
