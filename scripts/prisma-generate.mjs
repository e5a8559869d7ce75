// Runs `prisma generate` after install. Prisma's CLI insists on a schema-engine binary even
// though generating the client never runs it, and these machines cannot download one: point
// it at any existing file (this script) unless the caller already provides a real engine.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= fileURLToPath(import.meta.url);
env.PRISMA_HIDE_UPDATE_MESSAGE = "1";
const r = spawnSync("npx", ["--no-install", "prisma", "generate"], { stdio: "inherit", env });
process.exit(r.status ?? 1);
