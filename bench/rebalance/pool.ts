// The coordinator's side of the rebalance client workers (bench/rebalance/worker.ts): forks them
// and turns their IPC replies into promises, as bench/lib/workers.ts does for the traffic runs.
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { benchDir, repoRoot } from "../lib/paths.ts";
import type { FromRebalanceWorker, ToRebalanceWorker } from "./ipc.ts";

type Reply<T extends FromRebalanceWorker["type"]> = Extract<FromRebalanceWorker, { type: T }>;

class Worker {
  private readonly waiting = new Map<string, { resolve: (m: FromRebalanceWorker) => void; reject: (e: Error) => void }>();
  readonly child: ChildProcess;

  constructor() {
    this.child = fork(path.join(benchDir, "rebalance/worker.ts"), [], { cwd: repoRoot, execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (msg: FromRebalanceWorker) => {
      const w = this.waiting.get(msg.type);
      this.waiting.delete(msg.type);
      w?.resolve(msg);
    });
    this.child.on("exit", (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`rebalance client worker exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  ask<T extends FromRebalanceWorker["type"]>(msg: ToRebalanceWorker, reply: T, timeoutMs: number): Promise<Reply<T>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(reply);
        reject(new Error(`rebalance client worker did not answer "${msg.type}" within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiting.set(reply, {
        resolve: (m) => (clearTimeout(timer), resolve(m as Reply<T>)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.send(msg);
    });
  }
}

export class RebalancePool {
  private readonly workers: Worker[];
  constructor(count: number) {
    this.workers = Array.from({ length: count }, () => new Worker());
  }

  get size(): number {
    return this.workers.length;
  }

  askEach<T extends FromRebalanceWorker["type"]>(messages: ToRebalanceWorker[], reply: T, timeoutMs = 30_000): Promise<Reply<T>[]> {
    return Promise.all(this.workers.map((w, i) => w.ask(messages[i]!, reply, timeoutMs)));
  }

  askAll<T extends FromRebalanceWorker["type"]>(message: ToRebalanceWorker, reply: T, timeoutMs = 30_000): Promise<Reply<T>[]> {
    return this.askEach(this.workers.map(() => message), reply, timeoutMs);
  }

  post(message: ToRebalanceWorker): void {
    for (const w of this.workers) w.child.send(message);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        if (w.child.exitCode !== null || w.child.signalCode !== null) return;
        const exited = new Promise((resolve) => w.child.once("exit", resolve));
        await w.ask({ type: "close" }, "closed", 10_000).catch(() => w.child.kill("SIGKILL"));
        await exited;
      }),
    );
  }
}
