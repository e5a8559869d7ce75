// The in-process presence keeps the seam's promises (the shared suite, one node).
import t from "tap";
import { MemoryPresence } from "../../src/presence/memory-presence.ts";
import { GRACE_MS, presenceSuite } from "./presence-suite.ts";

presenceSuite(
  t,
  async (t, onChange) => {
    const p = new MemoryPresence({ graceMs: GRACE_MS }, onChange);
    await p.start();
    t.teardown(() => p.stop());
    return p;
  },
  { cluster: false },
);
