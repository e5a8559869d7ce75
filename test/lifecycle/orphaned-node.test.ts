// A node spawned by a test ends when the test process is gone (test/helpers/parent-watch.mjs):
// tap SIGKILLs a test file at its timeout, and its teardowns never run.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import t from "tap";
import { PARENT_WATCH } from "../helpers/node.ts";
import { eventually, tempDir } from "../helpers/probe.ts";

/** Whether the process runs: a zombie (ended, not yet reaped by whoever adopted it) does not. */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

t.test("the spawning process is SIGKILLed: the process it spawned with the watch ends within seconds", async (t) => {
  // A stand-in for a test file: it spawns a long-lived child with the watch and prints its pid;
  // the child, once the watch is in (its own code runs after the preload), writes a file.
  const ready = path.join(await tempDir(t, "orphan-"), "ready");
  const childCode = `require("node:fs").writeFileSync(${JSON.stringify(ready)}, ""); setInterval(() => {}, 1000);`;
  const code = `const c = require("node:child_process").spawn(process.execPath, ["--import", ${JSON.stringify(PARENT_WATCH)}, "-e", ${JSON.stringify(childCode)}], { stdio: "ignore" });
console.log(c.pid); setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  t.teardown(() => parent.kill("SIGKILL"));
  const child = Number(await new Promise<string>((r) => createInterface({ input: parent.stdout! }).once("line", r)));
  t.teardown(() => alive(child) && process.kill(child, "SIGKILL"));
  // (Bounded: starting node takes seconds on a starved machine.)
  await eventually(() => existsSync(ready), 60_000, 50);
  t.ok(existsSync(ready) && alive(child), "the child runs while its parent does");
  parent.kill("SIGKILL");
  const from = performance.now();
  await eventually(() => !alive(child), 30_000, 50);
  t.notOk(alive(child), `ended ${(performance.now() - from).toFixed(0)} ms after its parent (checked every 500 ms)`);
});
