// docs/operations.md documents exactly the metrics the code registers (alerts written from a
// stale table silently never fire).
import t from "tap";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const doc = readFileSync(path.join(root, "docs/operations.md"), "utf8");
const code = readdirSync(path.join(root, "src"), { withFileTypes: true, recursive: true })
  .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.parentPath.includes("generated"))
  .map((e) => readFileSync(path.join(e.parentPath, e.name), "utf8"))
  .join("\n");

const registered = new Set([...code.matchAll(/\bname:\s*["'`](chat_[a-z0-9_]+)["'`]/g)].map((m) => m[1]!));
const documented = new Set([...doc.matchAll(/\b(chat_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, "")));

t.ok(registered.size > 0, "src/ registers chat_* metrics");
t.same([...documented].filter((m) => !registered.has(m)).sort(), [], "every documented metric is registered in src/");
t.same([...registered].filter((m) => !documented.has(m)).sort(), [], "every registered metric is documented");
