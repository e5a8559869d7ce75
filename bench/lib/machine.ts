import { execFileSync } from "node:child_process";
import os from "node:os";
import { repoRoot } from "./paths.ts";

export interface MachineInfo {
  hostname: string;
  platform: string;
  release: string;
  arch: string;
  cpuModel: string;
  cpus: number;
  memoryGb: number;
  node: string;
  loadavg: number[];
  openFilesLimit: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cpus: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    openFilesLimit: run("sh", ["-c", "ulimit -n"]) ?? "unknown",
  };
}

export interface GitInfo {
  commit: string | null;
  /** Uncommitted changes at run time: the figures may not belong to `commit` exactly. */
  dirty: boolean;
}

export function gitInfo(): GitInfo {
  const commit = run("git", ["rev-parse", "HEAD"]);
  const status = run("git", ["status", "--porcelain"]);
  return { commit, dirty: status !== null && status.length > 0 };
}

function run(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}
