import { RedisBus } from "../../src/bus/redis-bus.ts";
import { startStandaloneRedis } from "../../scripts/cluster/redis-processes.ts";
const r = await startStandaloneRedis();
try {
  const bus = new RedisBus(r.url, () => {});
  await bus.ready();
  for (let i = 0; i < 50; i++) await bus.subscribe(`idle-${i}`);
  await new Promise((res) => setTimeout(res, 3000));
  const c0 = process.cpuUsage(); const t0 = Date.now();
  await new Promise((res) => setTimeout(res, 20000));
  const c = process.cpuUsage(c0);
  console.log(`idle single bus: ${((c.user + c.system) / 1000 / ((Date.now() - t0) / 1000)).toFixed(1)} ms CPU per s`);
  await bus.close();
} finally { await r.stop(); }
