// The presence transitions script alone (issue 13): node CPU and redis-server time per transition,
// the form in use (four arguments and two integers back per transition, arguments to redis.call
// kept strings; src/presence/redis-scripts.ts) against a packed one (one argument, one string
// back) and the session-start one (Lua numbers to redis.call), on a private
// redis-server, with the reconnect storm's state: 6,000 users over 100 groups join, 80 per call,
// then leave. Alternates the two forms `--passes` times:
//
//   npx tsx bench/presence-script.ts [--passes 4]
//
// Node: process CPU per transition (building the call, writing it, reading and reading back the
// answer). Redis: INFO commandstats usec of EVALSHA per transition (the script's execution,
// its inner commands included; no I/O).
import { Redis } from "ioredis";
import { startStandaloneRedis } from "../scripts/cluster/redis-processes.ts";
import { COMMON, NODES_KEY, TRANSITIONS } from "../src/presence/redis-scripts.ts";

/**
 * The packed form tried in issue 13 (h13redis) and not kept: one argument, a line per transition
 * (op TAB group TAB user TAB since LF; the user runs to the last tab), one string back (counts
 * comma-separated, empty = no change).
 */
const PACKED = `${COMMON}
local node = ARGV[1]
if not redis.call('ZSCORE', NODES, node) then return unknown(node)[1] end
local nkey = P .. ':n:' .. node
local out = {}
for line in string.gmatch(ARGV[2], '([^\\n]*)\\n') do
  local op, group, user, since = string.match(line, '^(%a)\\t([^\\t]+)\\t(.+)\\t(%d*)$')
  local c = false
  if op == 'a' then
    since = tonumber(since)
    if redis.call('HSET', nkey, group .. ' ' .. user, since) == 1 then c = hold(group, user, since) end
  elseif op == 'r' and redis.call('HDEL', nkey, group .. ' ' .. user) == 1 then
    c = unhold(group, user)
  end
  out[#out + 1] = c and tostring(c) or ''
end
return table.concat(out, ',')
`;

/**
 * The form in use at the start of issue 13's fourth session: the same, but `since` and the holder
 * count's increments reach redis.call as Lua numbers, which Redis 7.0 formats back to strings
 * with printf for every call.
 */
const NUMBERS = `${COMMON.replace("user, '1')", "user, 1)").replace("user, '-1')", "user, -1)")}
local node = ARGV[1]
if not redis.call('ZSCORE', NODES, node) then return unknown(node) end
local nkey = P .. ':n:' .. node
local out = {}
for i = 2, #ARGV, 4 do
  local op, group, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local c = false
  if op == 'a' then
    local since = tonumber(ARGV[i + 3])
    if redis.call('HSET', nkey, group .. ' ' .. user, since) == 1 then c = hold(group, user, since) end
  elseif redis.call('HDEL', nkey, group .. ' ' .. user) == 1 then
    c = unhold(group, user)
  end
  if c then
    out[#out + 1] = 1
    out[#out + 1] = c
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
`;
if (NUMBERS.includes("'1'")) throw new Error("COMMON changed: rebuild NUMBERS");

const i = process.argv.indexOf("--passes");
const PASSES = i > 0 ? Number(process.argv[i + 1]) : 4;
const BATCH = 80;
const NODE = "bench-node";
type Call = (key: string, ...args: (string | number)[]) => Promise<unknown>;

const redis = await startStandaloneRedis();
const r = new Redis(redis.url);
try {
  r.defineCommand("packed", { numberOfKeys: 1, lua: PACKED });
  r.defineCommand("fourArgs", { numberOfKeys: 1, lua: TRANSITIONS });
  r.defineCommand("numbers", { numberOfKeys: 1, lua: NUMBERS });
  const call = (name: string) => (r as unknown as Record<string, Call>)[name]!.bind(r);
  const [packed, fourArgs, numbers] = [call("packed"), call("fourArgs"), call("numbers")];
  await r.zadd(NODES_KEY, Date.now() + 3_600_000, NODE);
  const users = Array.from({ length: 6_000 }, (_, k) => [`bench-conn-${k % 100}`, `u${k}`] as const);
  // As in the storm, each group keeps one user throughout.
  for (let g = 0; g < 100; g++) await packed(NODES_KEY, NODE, `a\tbench-conn-${g}\tanchor${g}\t${Date.now()}\n`);

  const forms = {
    packed: async (batch: (readonly [string, string])[], op: "a" | "r") => {
      let s = "";
      const now = Date.now();
      for (const [g, u] of batch) s += op === "a" ? `a\t${g}\t${u}\t${now}\n` : `r\t${g}\t${u}\t\n`;
      const out = String(await packed(NODES_KEY, NODE, s));
      let changed = 0;
      for (const f of out.split(",")) if (f !== "") changed++;
      return changed;
    },
    "four args": async (batch: (readonly [string, string])[], op: "a" | "r") => {
      const args: (string | number)[] = [NODE];
      const now = Date.now();
      for (const [g, u] of batch) args.push(op, g, u, op === "a" ? now : "");
      const out = (await fourArgs(NODES_KEY, ...args)) as number[];
      let changed = 0;
      for (let k = 0; k < batch.length; k++) if (out[2 * k] === 1) changed++;
      return changed;
    },
    "numbers": async (batch: (readonly [string, string])[], op: "a" | "r") => {
      const args: (string | number)[] = [NODE];
      const now = Date.now();
      for (const [g, u] of batch) args.push(op, g, u, op === "a" ? now : "");
      const out = (await numbers(NODES_KEY, ...args)) as number[];
      let changed = 0;
      for (let k = 0; k < batch.length; k++) if (out[2 * k] === 1) changed++;
      return changed;
    },
  };
  const usec = async () => Number(/^cmdstat_evalsha:calls=\d+,usec=(\d+)/m.exec(await r.info("commandstats"))?.[1] ?? 0);
  for (let pass = 0; pass < PASSES; pass++) {
    for (const [name, form] of pass % 2 ? Object.entries(forms).reverse() : Object.entries(forms)) {
      const line: string[] = [];
      for (const op of ["a", "r"] as const) {
        const redis0 = await usec();
        const cpu0 = process.cpuUsage();
        let changed = 0;
        for (let off = 0; off < users.length; off += BATCH) changed += await form(users.slice(off, off + BATCH), op);
        const cpu = process.cpuUsage(cpu0);
        const redisUs = (await usec()) - redis0;
        if (changed !== users.length) throw new Error(`${name}: ${changed} of ${users.length} ${op === "a" ? "joins" : "leaves"} changed presence`);
        line.push(`${op === "a" ? "joins" : "leaves"}: node ${((cpu.user + cpu.system) / users.length).toFixed(2)} µs, redis ${(redisUs / users.length).toFixed(2)} µs`);
      }
      console.log(`pass ${pass + 1} ${name.padEnd(9)} per transition, ${line.join("; ")}`);
    }
  }
} finally {
  r.disconnect();
  await redis.stop();
}
