// `npm run bench`: runs the chosen scenarios against the baseline and the service, stores the
// figures under bench/results/ and regenerates docs/benchmarks.md. See bench/README.md.
import { parseOptions, usage, type Options } from "./lib/args.ts";
import { gitInfo, machineInfo } from "./lib/machine.ts";
import { resultsDir } from "./lib/paths.ts";
import { writeReport } from "./lib/report.ts";
import { writeRun, type RunResult } from "./lib/results.ts";
import { runScenario } from "./lib/scenario.ts";
import { stopAll } from "./lib/targets.ts";
import { scenarios } from "./scenarios/index.ts";

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

let opts: Options;
try {
  opts = parseOptions(process.argv.slice(2), scenarios.map((s) => s.name));
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  console.error(usage(scenarios));
  process.exit(2);
}
if (opts.help) {
  console.log(usage(scenarios));
  process.exit(0);
}

const run: RunResult = {
  schema: 1,
  runId: Date.now().toString(36),
  command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
  startedAt: new Date().toISOString(),
  finishedAt: "",
  git: gitInfo(),
  machine: machineInfo(),
  scenarios: [],
};
log(`run ${run.runId}: ${opts.scenarios.join(", ")} on ${opts.targets.join(" and ")}, ${opts.workers} client workers`);

// Ctrl-C: nodes and the throw-away databases go too; client workers exit with their parent.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping nodes, dropping databases`);
    void stopAll().finally(() => process.exit(130));
  });
}

let file = "";
for (const name of opts.scenarios) {
  const scenario = scenarios.find((s) => s.name === name)!;
  run.scenarios.push(await runScenario(scenario, opts, run.runId, log));
  run.finishedAt = new Date().toISOString();
  // Saved after every scenario, so an interrupted suite keeps what it measured.
  file = writeRun(resultsDir, run);
}
log(`results: ${file}`);
if (opts.report) for (const written of writeReport()) log(`wrote ${written}`);
