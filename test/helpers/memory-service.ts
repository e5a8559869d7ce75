// A ChatService with no store behind it (lastSeq 0, ping ok), presence that does nothing and
// batches nothing: for unit tests of the paths that never reach the database (typing, the
// frame loop). `deliver` gets what the service hands to the group's sockets (join/leave frames
// included, which a node gives only to the sockets that asked for them).
import type { EventBus } from "../../src/bus/bus.ts";
import { ChatService } from "../../src/chat/service.ts";
import type { Metrics } from "../../src/metrics/metrics.ts";

export function storelessService(bus: EventBus, metrics: Metrics, deliver: (group: string, payload: string) => void): ChatService {
  return new ChatService({
    store: { lastSeq: async () => 0, ping: async () => {} } as never,
    bus,
    limits: { maxBodyChars: 4000, maxFileBytes: 1 << 20 },
    metrics,
    deliver: (group, payload) => deliver(group, String(payload)),
    deliverPresence: (group, payload) => deliver(group, String(payload)),
    delivery: { gapWaitMs: 100, retryWindowMs: 60_000 },
    storeGuard: { deadlineMs: 5_000, probeMs: 1_000 },
    presence: { open() {}, close() {}, snapshot: async () => ({ count: 0, users: [] }), start: async () => {}, stop: async () => {}, held: 0 } as never,
    presenceMaxBroadcast: 100,
    presenceBatchMs: 0,
    presenceBusyBatchMs: 0,
    presenceGraceMs: 5_000,
    presenceBundles: () => false,
  });
}
