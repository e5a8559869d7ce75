// The webhook retry delay: base x 2^attempt, capped, with ±20 % jitter.
import t from "tap";
import { backoffMs } from "../../src/webhooks/dispatcher.ts";

t.test("the delay doubles per attempt within ±20 %, and never passes the cap (+20 %)", async (t) => {
  for (let attempt = 0; attempt < 40; attempt++) {
    for (let i = 0; i < 50; i++) {
      const d = backoffMs(attempt, 500, 60_000);
      const raw = Math.min(60_000, 500 * 2 ** attempt);
      t.ok(d >= raw * 0.8 - 1 && d <= raw * 1.2 + 1, `attempt ${attempt}: ${d} ms near ${raw}`, { diagnostic: false });
    }
  }
  t.ok(backoffMs(1_000, 500, 60_000) <= 72_000, "a huge attempt count stays capped");
});
