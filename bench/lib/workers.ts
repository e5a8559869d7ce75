// The coordinator's side of the client workers: forks them and turns their IPC replies into
// promises. Every request goes to all workers and waits for each one's answer.
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { FromWorker, ToWorker } from "./ipc.ts";
import { benchDir, repoRoot } from "./paths.ts";

type Reply<T extends FromWorker["type"]> = Extract<FromWorker, { type: T }>;

class Worker {
  private waiting = new Map<string, { resolve: (m: FromWorker) => void; reject: (e: Error) => void }>();
  readonly child: ChildProcess;

  constructor() {
    this.child = fork(path.join(benchDir, "worker.ts"), [], {
      cwd: repoRoot,
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child.on("message", (msg: FromWorker) => {
      const w = this.waiting.get(msg.type);
      this.waiting.delete(msg.type);
      w?.resolve(msg);
    });
    this.child.on("exit", (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`client worker exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  ask<T extends FromWorker["type"]>(msg: ToWorker, reply: T, timeoutMs: number): Promise<Reply<T>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(reply);
        reject(new Error(`client worker did not answer "${msg.type}" within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiting.set(reply, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Reply<T>);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send(msg);
    });
  }
}

export class WorkerPool {
  private readonly workers: Worker[];

  constructor(count: number) {
    this.workers = Array.from({ length: count }, () => new Worker());
  }

  get size(): number {
    return this.workers.length;
  }

  /** Sends each worker its own message (`messages[i]` to worker i) and gathers the replies. */
  askEach<T extends FromWorker["type"]>(messages: ToWorker[], reply: T, timeoutMs = 30_000): Promise<Reply<T>[]> {
    return Promise.all(this.workers.map((w, i) => w.ask(messages[i]!, reply, timeoutMs)));
  }

  askAll<T extends FromWorker["type"]>(message: ToWorker, reply: T, timeoutMs = 30_000): Promise<Reply<T>[]> {
    return this.askEach(this.workers.map(() => message), reply, timeoutMs);
  }

  post(message: ToWorker): void {
    for (const w of this.workers) w.child.send(message);
  }

  /** Closes every worker's sockets and waits for it to exit; kills one that hangs. */
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
