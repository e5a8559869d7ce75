export * from "./errors.ts";
export * from "./limits.ts";
export * from "./names.ts";
export * from "./client-frames.ts";
export * from "./server-events.ts";
