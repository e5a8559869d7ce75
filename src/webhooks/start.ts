// Webhooks from the configuration: a dispatcher over the database's outbox, or null when
// WEBHOOK_URL is unset (then no outbox rows are written either: see openDatabase's webhookOutbox).
import type { Config } from "../config/env.ts";
import type { Logger } from "../log.ts";
import { webhookMetrics } from "../metrics/backend-metrics.ts";
import type { PrismaClient } from "../store/generated/client.ts";
import { PrismaWebhookOutbox } from "../store/prisma-outbox.ts";
import type { ChatStore } from "../store/store.ts";
import type { Registry } from "prom-client";
import { WebhookDispatcher } from "./dispatcher.ts";

export function webhooksFromConfig(config: Config, prisma: PrismaClient, store: ChatStore, registry: Registry, log: Logger): WebhookDispatcher | null {
  if (!config.WEBHOOK_URL || !config.WEBHOOK_SECRET) return null;
  const outbox = new PrismaWebhookOutbox(prisma);
  return new WebhookDispatcher(
    outbox,
    store,
    {
      url: config.WEBHOOK_URL,
      secret: config.WEBHOOK_SECRET,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
      backoffBaseMs: config.WEBHOOK_BACKOFF_BASE_MS,
      backoffMaxMs: config.WEBHOOK_BACKOFF_MAX_MS,
      concurrency: config.WEBHOOK_CONCURRENCY,
      pollMs: config.WEBHOOK_POLL_MS,
      perGroup: 100,
    },
    webhookMetrics(registry, () => outbox.counts()),
    log,
  );
}
