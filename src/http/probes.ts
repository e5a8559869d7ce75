// GET /healthz, /readyz and /metrics: for the kubelet and Prometheus, never for the public (no
// token). They are served on the main port, or only on METRICS_PORT when it is set, which the
// Kubernetes Service does not expose. None of them reaches the database: /readyz and the up
// gauges read the background probes' last result (src/health/).
import type { TemplatedApp } from "uWebSockets.js";
import type { ReadinessReport } from "../health/readiness.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { deferred, send, sendJson } from "../uws/respond.ts";

export interface ProbeDeps {
  metrics: Metrics;
  readiness: () => ReadinessReport;
  log: { error(obj: object, msg: string): void };
}

export function registerProbeRoutes(app: TemplatedApp, deps: ProbeDeps): void {
  const { metrics } = deps;

  app.get("/healthz", (res) => send(res, 200, "ok", { "Content-Type": "text/plain" }));

  app.get("/readyz", (res) => {
    const report = deps.readiness();
    metrics.ready.set(report.ready ? 1 : 0);
    sendJson(res, report.ready ? 200 : 503, report);
  });

  app.get("/metrics", (res) => {
    const aborted = deferred(res);
    metrics.registry
      .metrics()
      .then((text) => send(res, 200, text, { "Content-Type": metrics.registry.contentType }, aborted))
      .catch((err) => {
        deps.log.error({ err }, "metrics failed");
        sendJson(res, 500, { error: "internal", message: "internal error" }, aborted);
      });
  });
}
