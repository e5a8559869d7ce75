import type { AnyScenario } from "../lib/scenario.ts";
import { connections } from "./connections.ts";
import { create } from "./create.ts";
import { crossNode } from "./cross-node.ts";
import { rebalance } from "./rebalance.ts";
import { footprint } from "./footprint.ts";
import { soak } from "./soak.ts";
import { saturation } from "./saturation.ts";
import { typing } from "./typing.ts";
import { hostile } from "./hostile.ts";
import { uploads } from "./uploads.ts";

/** In the order the default suite runs them: quick ones first, the long soak last. */
export const scenarios: AnyScenario[] = [footprint, typing, create, crossNode, rebalance, saturation, connections, hostile, uploads, soak];
