// Structured JSON logs. Message bodies and tokens are never logged: redact paths catch the
// places they could slip in through error objects.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: ["body", "token", "authorization", "*.body", "*.token", "*.authorization"], censor: "[redacted]" },
  });
}
