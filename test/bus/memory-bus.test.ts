// The in-process bus keeps the EventBus contract (one node only).
import t from "tap";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { busContract } from "./contract.ts";

busContract(t, { shared: false, make: async (onPayload) => new MemoryBus(onPayload) });
