import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const benchDir = fileURLToPath(new URL("../", import.meta.url));
export const resultsDir = fileURLToPath(new URL("../results/", import.meta.url));
export const docsFile = fileURLToPath(new URL("../../docs/benchmarks.md", import.meta.url));
/** The hand-written part of the report: targets, and what changed each figure. */
export const performanceLog = fileURLToPath(new URL("../performance-log.md", import.meta.url));
