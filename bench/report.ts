// Regenerates docs/benchmarks.md and the charts from the stored runs without running anything.
import { writeReport } from "./lib/report.ts";

for (const file of writeReport()) console.log(`wrote ${file}`);
