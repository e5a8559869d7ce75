// The node process (src/main.ts loads it once V8 has its settings): configuration, one node,
// and signal handling.
import { checkStartup, ConfigError, loadConfig } from "./config/env.ts";
import "./uws/uws.ts"; // fail fast, before anything else, when the native server cannot load
import { createLogger } from "./log.ts";
import { startNode } from "./server.ts";

let config;
try {
  config = loadConfig();
  checkStartup(config);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(1);
}

const log = createLogger(config.LOG_LEVEL);
let node;
try {
  node = await startNode(config, log);
} catch (err) {
  log.fatal({ err }, `cannot start: ${(err as Error).message}`);
  process.exit(1);
}

const stop = (signal: string) => {
  log.info({ signal }, "shutting down");
  // The contract: exit within the shutdown timeout plus the drain delay and spread, whatever hangs.
  setTimeout(() => {
    log.error({}, "shutdown timed out; exiting");
    process.exit(1);
  }, config.SHUTDOWN_TIMEOUT_MS + config.DRAIN_DELAY_MS + config.DRAIN_SPREAD_MS).unref();
  node.shutdown().then(
    () => process.exit(0),
    (err) => {
      log.error({ err }, "shutdown failed");
      process.exit(1);
    },
  );
};
process.once("SIGTERM", () => stop("SIGTERM"));
process.once("SIGINT", () => stop("SIGINT"));
