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
