// The Redis bus keeps the EventBus contract, on the shared Redis (group names are unique).
import t from "tap";
import { RedisBus } from "../../src/bus/redis-bus.ts";
import { REDIS_URL, requireRedis } from "../helpers/services.ts";
import { busContract } from "./contract.ts";

t.before(requireRedis);
busContract(t, {
  shared: true,
  make: async (onPayload) => {
    const bus = new RedisBus(REDIS_URL, onPayload);
    await bus.ready();
    return bus;
  },
});
