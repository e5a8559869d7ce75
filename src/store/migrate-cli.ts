// `npm run migrate`: applies pending migrations to DATABASE_URL and exits (the Kubernetes Job).
import { loadConfig } from "../config/env.ts";
import { migratePostgres } from "./database.ts";

const config = loadConfig();
if (!config.DATABASE_URL) {
  console.error("npm run migrate needs DATABASE_URL (the embedded database migrates itself at start)");
  process.exit(2);
}
const applied = await migratePostgres(config.DATABASE_URL);
console.log(JSON.stringify({ msg: "migrations applied", applied }));
