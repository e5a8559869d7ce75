// The in-process bus: one node, no network. Delivery is synchronous inside publish().
import type { BusHandler, EventBus } from "./bus.ts";

/** Every publish is delivered before it returns: one settled promise serves them all. */
const DELIVERED = Promise.resolve();

export class MemoryBus implements EventBus {
  private readonly groups = new Set<string>();

  constructor(private readonly onPayload: BusHandler) {}

  publish(group: string, payload: string): Promise<void> {
    try {
      this.publishNow(group, payload);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return DELIVERED;
  }

  publishNow(group: string, payload: string): void {
    if (this.groups.has(group)) this.onPayload(group, payload);
  }

  async subscribe(group: string): Promise<void> {
    this.groups.add(group);
  }

  async unsubscribe(group: string): Promise<void> {
    this.groups.delete(group);
  }

  isUp(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.groups.clear();
  }
}
