// A node spawned by a test ends when the test process is gone (test/helpers/parent-watch.mjs):
// tap SIGKILLs a test file at its timeout, and its teardowns never run.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import t from "tap";
import { PARENT_WATCH } from "../helpers/node.ts";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test("the spawning process is SIGKILLed: the process it spawned with the watch ends within seconds", async (t) => {
  // A stand-in for a test file: it spawns a long-lived child with the watch, prints its pid, and waits.
  const code = `const c = require("node:child_process").spawn(process.execPath, ["--import", ${JSON.stringify(PARENT_WATCH)}, "-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
console.log(c.pid); setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  t.teardown(() => parent.kill("SIGKILL"));
  const child = Number(await new Promise<string>((r) => createInterface({ input: parent.stdout! }).once("line", r)));
  t.teardown(() => alive(child) && process.kill(child, "SIGKILL"));
  await new Promise((r) => setTimeout(r, 700));
  t.ok(alive(child), "the child runs while its parent does");
  parent.kill("SIGKILL");
  const from = performance.now();
  while (alive(child) && performance.now() - from < 10_000) await new Promise((r) => setTimeout(r, 50));
  t.notOk(alive(child), `ended ${(performance.now() - from).toFixed(0)} ms after its parent`);
});
