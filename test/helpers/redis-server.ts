// A private redis-server for one test file, on a free port of its own, so that a test can kill
// and restart it without touching the shared Redis every other test uses. Nothing is persisted:
// a restart comes back empty (no subscriptions, no data), as after a crash.
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import os from "node:os";
import type { Test } from "tap";

/** A TCP port nobody listens on right now (one helper for tests, bench and the cluster scripts). */
import { freeLoopbackPort as freePort } from "../../scripts/cluster/redis-processes.ts";
export { freePort };

export interface PrivateRedis {
  port: number;
  url: string;
  /** Whether a redis-server process is up right now. */
  running(): boolean;
  /** Starts redis-server on the same port; resolves once it accepts commands. */
  start(): Promise<void>;
  /** Kills it: SIGKILL (a crash) or SHUTDOWN NOSAVE (a clean stop); resolves once it exited. */
  stop(how?: "SIGKILL" | "shutdown"): Promise<void>;
}

/** Starts a private redis-server; it is killed at teardown. */
export async function privateRedis(t: Test): Promise<PrivateRedis> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const output: string[] = [];

  const start = () =>
    new Promise<void>((resolve, reject) => {
      const args = ["--port", String(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--daemonize", "no"];
      const c = spawn("redis-server", args, { cwd: os.tmpdir(), stdio: ["ignore", "pipe", "pipe"] });
      child = c;
      exited = new Promise((r) => c.once("exit", () => r()));
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        reject(new Error(`redis-server on ${port} not ready in 10 s: ${output.slice(-10).join("")}`));
      }, 10_000);
      const onData = (chunk: Buffer) => {
        const s = chunk.toString();
        output.push(s);
        if (!done && /Ready to accept connections/.test(s)) {
          done = true;
          clearTimeout(timer);
          resolve();
        }
      };
      c.stdout!.on("data", onData);
      c.stderr!.on("data", onData);
      c.once("exit", (code, signal) => {
        if (child === c) child = null;
        if (!done) {
          done = true;
          clearTimeout(timer);
          reject(new Error(`redis-server on ${port} exited (${code ?? signal}) before ready: ${output.slice(-10).join("")}`));
        }
      });
    });

  const stop = async (how: "SIGKILL" | "shutdown" = "SIGKILL") => {
    const c = child;
    if (!c) return;
    if (how === "SIGKILL") {
      c.kill("SIGKILL");
    } else {
      await new Promise<void>((resolve) => {
        const s = net.connect({ host: "127.0.0.1", port }, () => s.write("SHUTDOWN NOSAVE\r\n"));
        s.on("error", () => resolve());
        s.on("close", () => resolve());
      });
    }
    await exited;
  };

  await start();
  t.teardown(async () => {
    if (child) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  return { port, url: `redis://127.0.0.1:${port}`, running: () => child !== null, start, stop };
}
