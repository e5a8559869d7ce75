// Metrics of the backend-facing parts (server API, webhooks), on the node's registry. Kept apart
// from metrics.ts so that they exist only when those parts are configured.
import client from "prom-client";

export function serverApiMetrics(registry: client.Registry) {
  return {
    requests: new client.Counter({
      name: "chat_server_api_requests_total",
      help: "Server API requests answered, by route (uWS pattern) and HTTP status",
      labelNames: ["route", "status"],
      registers: [registry],
    }),
  };
}

export type WebhookMetrics = ReturnType<typeof webhookMetrics>;

export function webhookMetrics(registry: client.Registry, outboxCounts: () => Promise<{ pending: number; dead: number }>) {
  return {
    deliveries: new client.Counter({
      name: "chat_webhook_deliveries_total",
      help: "Webhook POSTs by result: ok (2xx), failed (will be retried), dead (failed its last attempt: dead-lettered)",
      labelNames: ["result"],
      registers: [registry],
    }),
    duration: new client.Histogram({
      name: "chat_webhook_post_duration_seconds",
      help: "Time for the webhook receiver to answer one POST (or fail)",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    lag: new client.Histogram({
      name: "chat_webhook_lag_seconds",
      help: "From an event being stored to the receiver acknowledging its webhook (retries included)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    outbox: new client.Gauge({
      name: "chat_webhook_outbox_rows",
      help: "Webhook outbox rows in the database (all nodes), by state: pending (to deliver) or dead (dead-lettered)",
      labelNames: ["state"],
      registers: [registry],
      async collect() {
        try {
          const c = await outboxCounts();
          this.set({ state: "pending" }, c.pending);
          this.set({ state: "dead" }, c.dead);
        } catch {
          // the database is down: chat_db_up says so; keep the last values
        }
      },
    }),
  };
}
