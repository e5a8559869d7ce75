// Chat nodes for tests: in-process (fast, for single-node behaviour; runs the TypeScript
// sources) or as real child processes (for cross-node, restart and signal tests; runs the
// compiled build, `node dist/main.js`, exactly as production does). Both listen on ephemeral
// ports.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Test } from "tap";
import { loadConfig } from "../../src/config/env.ts";
import { createLogger } from "../../src/log.ts";
import { startNode, type ChatNode } from "../../src/server.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export type Env = Record<string, string | undefined>;

/** One node in this process; shut down at teardown. */
export async function startInProcess(t: Test, env: Env): Promise<ChatNode> {
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", ...env });
  const node = await startNode(config, createLogger(config.LOG_LEVEL));
  t.teardown(() => node.shutdown());
  return node;
}

export interface NodeProcess {
  port: number;
  child: ChildProcess;
  /** Every log line the node printed, parsed. */
  logs: Record<string, unknown>[];
  stderr: string[];
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
}

/** Preloaded into spawned nodes: they end when the test process is gone (see the file). */
export const PARENT_WATCH = fileURLToPath(new URL("./parent-watch.mjs", import.meta.url));

/** The production start command, relative to the repository root (the Dockerfile's CMD). */
export const COMPILED_ENTRY = "dist/main.js";

let built = false;
/**
 * Brings dist/ up to date with the sources (`npm run build`, skipped when nothing changed; the
 * build takes a lock, so parallel test files do not build over each other). Once per process.
 */
export function ensureBuilt(): void {
  if (built) return;
  const r = spawnSync(process.execPath, ["scripts/build.mjs", "--if-stale"], { cwd: ROOT, encoding: "utf8", timeout: 180_000 });
  if (r.status !== 0) throw new Error(`npm run build failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message}`);
  built = true;
}

/** One node as a child process (`node dist/main.js`, built first if stale); killed at teardown if still up. */
export function spawnNode(
  t: Test,
  env: Env,
  opts: {
    waitListening?: boolean;
    /** node's arguments instead of the compiled entry (e.g. a preload, or the sources under tsx). */
    argv?: string[];
  } = {},
): Promise<NodeProcess> {
  if (!opts.argv) ensureBuilt();
  const child = spawn(process.execPath, ["--import", PARENT_WATCH, ...(opts.argv ?? [COMPILED_ENTRY])], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  createInterface({ input: child.stderr! }).on("line", (l) => stderr.push(l));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in 30 s; stderr: ${stderr.join("\n")}`)), 30_000);
    let resolved = false;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = { msg: line };
      }
      logs.push(entry);
      if (!resolved && entry.msg === "listening") {
        resolved = true;
        clearTimeout(timer);
        resolve({ port: Number(entry.port), child, logs, stderr, exited });
      }
    });
    if (opts.waitListening === false) {
      resolved = true;
      clearTimeout(timer);
      resolve({ port: 0, child, logs, stderr, exited });
    }
    void exited.then((code) => {
      if (!resolved) {
        clearTimeout(timer);
        reject(new Error(`node exited (${code}) before listening; stderr: ${stderr.join("\n")}; stdout: ${JSON.stringify(logs)}`));
      }
    });
  });
}
