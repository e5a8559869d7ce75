// Reads a process's CPU time and memory from /proc, so server cost is measured from outside
// without instrumenting the server (the baseline and the service are treated alike).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User plus system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; fields are counted after its ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** User and system CPU seconds apart (JavaScript and native code run as user time; system calls, e.g. socket writes, as system time). */
export function cpuSplit(pid: number): { userS: number; sysS: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { userS: Number(fields[11]) / clockTicks, sysS: Number(fields[12]) / clockTicks };
}

/** Resident set size in kB. */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** CPU seconds of several processes together (a target's nodes). */
export const totalCpuSeconds = (pids: readonly number[]) => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);

/** RSS of several processes together, in kB. */
export const totalRssKb = (pids: readonly number[]) => pids.reduce((a, pid) => a + rssKb(pid), 0);

export interface MachineCpu {
  busy: number;
  total: number;
}

/** Whole-machine CPU ticks, to tell a busy machine (other jobs) from a slow server. */
export function machineCpu(): MachineCpu {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
  const t = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (t[3] ?? 0) + (t[4] ?? 0);
  const total = t.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Share of the whole machine busy between two readings, 0..1. */
export const busyShare = (a: MachineCpu, b: MachineCpu) => (b.busy - a.busy) / Math.max(1, b.total - a.total);
