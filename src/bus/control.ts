// Node-to-node commands over the event bus (today: disconnect a user's sockets on every node).
// They travel on a bus channel named after a group name no client can use (`@control`: `@` is not
// allowed in group names), so the bus needs nothing new and Redis carries them to every node.
// Delivery is the bus's: at most once, to the nodes connected when it is published.
import * as v from "valibot";
import { UserId } from "../protocol/index.ts";
import type { EventBus } from "./bus.ts";

export const CONTROL_GROUP = "@control";

export const ControlCommand = v.variant("command", [v.object({ command: v.literal("disconnect"), user: UserId })]);
export type ControlCommand = v.InferOutput<typeof ControlCommand>;

export class ControlChannel {
  constructor(
    private readonly bus: EventBus,
    private readonly handle: (c: ControlCommand) => void,
    private readonly onBad: (payload: string) => void = () => {},
  ) {}

  /** Resolves once this node hears commands. */
  start(): Promise<void> {
    return this.bus.subscribe(CONTROL_GROUP);
  }

  publish(c: ControlCommand): Promise<void> {
    return this.bus.publish(CONTROL_GROUP, JSON.stringify(c));
  }

  /** A payload of the control channel (the node's bus handler routes CONTROL_GROUP here). */
  receive(payload: Uint8Array | string): void {
    const text = typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8");
    let parsed: v.SafeParseResult<typeof ControlCommand>;
    try {
      parsed = v.safeParse(ControlCommand, JSON.parse(text));
    } catch {
      return this.onBad(text);
    }
    if (parsed.success) this.handle(parsed.output);
    else this.onBad(text);
  }
}
