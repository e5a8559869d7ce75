// The Redis layout of presence and the Lua scripts that change it, written down once. Every key
// carries the hash tag `{chatpresence}` (one slot: the scripts touch keys they derive).
//
//   {chatpresence}:nodes           ZSET  node id -> lease expiry (ms, Redis clock)
//   {chatpresence}:n:<node>        HASH  "<group> <user>" -> since (ms): what the node holds
//   {chatpresence}:r:<group>       HASH  user -> how many nodes hold them
//   {chatpresence}:g:<group>       ZSET  user -> since (ms): the present users, oldest first
//   {chatpresence}:reaped:<node>   STRING set for a day once the node was reaped
//
// A user is present while their holder count is > 0. Every script is O(log n) in the group's
// size (`transitions`: per transition), except `sync` and `reap`, which are O(the node's pairs).
export const PREFIX = "{chatpresence}";
export const NODES_KEY = `${PREFIX}:nodes`;
export const groupKey = (group: string) => `${PREFIX}:g:${group}`;

/** What every script starts with (exported so that bench/presence-script.ts can build the packed form it compares against). */
export const COMMON = `
local P = '${PREFIX}'
local NODES = KEYS[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function split(f)
  local i = string.find(f, ' ', 1, true)
  return string.sub(f, 1, i - 1), string.sub(f, i + 1)
end
-- The node's lease is gone: {-2, 0} it was reaped (the cluster saw its users leave), {-1, 0} Redis lost its data.
local function unknown(node)
  if redis.call('EXISTS', P .. ':reaped:' .. node) == 1 then return {-2, 0} end
  return {-1, 0}
end
-- Arguments to redis.call are strings where they can be: Redis 7.0 formats a Lua number with
-- printf's %.17g for each call, a measurable share of a transition.
-- One more node holds the user: the group count after a join, or false.
local function hold(group, user, since)
  local g = P .. ':g:' .. group
  if redis.call('HINCRBY', P .. ':r:' .. group, user, '1') == 1 then
    redis.call('ZADD', g, since, user)
    return redis.call('ZCARD', g)
  end
  redis.call('ZADD', g, 'LT', since, user)
  return false
end
-- One node fewer holds the user: the group count after a leave, or false.
local function unhold(group, user)
  local r = redis.call('HINCRBY', P .. ':r:' .. group, user, '-1')
  if r > 0 then return false end
  redis.call('HDEL', P .. ':r:' .. group, user)
  redis.call('ZREM', P .. ':g:' .. group, user)
  if r < 0 then return false end
  return redis.call('ZCARD', P .. ':g:' .. group)
end
`;

/**
 * A node's transitions, in order: `a` (acquire: its first socket of the pair) or `r` (release:
 * its grace ran out). KEYS nodes; ARGV node, then op, group, user, since (`a` only, else empty)
 * for each -> {status, count} for each: 1 and the group's count after a join or leave, 0 nothing
 * changed for the cluster (held elsewhere too, or this node's share already said so: a re-sync
 * may have registered the pair first); or {-1|-2, 0} alone when the node is unknown (see `unknown`).
 *
 * Measured against one packed argument (a line per transition) and one string back
 * (bench/presence-script.ts, issue 13 h13redis): packing saves the node 1-2 µs per transition
 * (ioredis' work per argument) but costs Redis 0.7-1.5 µs more (Lua splitting the string), and
 * Redis is the fleet's one shared core where the node's CPU scales out: not kept.
 */
export const TRANSITIONS = `${COMMON}
local node = ARGV[1]
if not redis.call('ZSCORE', NODES, node) then return unknown(node) end
local nkey = P .. ':n:' .. node
local out = {}
for i = 2, #ARGV, 4 do
  local op, group, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local c = false
  if op == 'a' then
    local since = ARGV[i + 3] -- kept a string: see the note above hold()
    if not tonumber(since) then return redis.error_reply('since must be a number') end
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

/** KEYS nodes; ARGV node, ttlMs -> 1 renewed, 0 unknown (Redis lost its data), 2 expired or reaped. */
export const RENEW = `${COMMON}
local node, ttl = ARGV[1], tonumber(ARGV[2])
local s = redis.call('ZSCORE', NODES, node)
local now = now_ms()
if not s then
  if redis.call('EXISTS', P .. ':reaped:' .. node) == 1 then return 2 end
  return 0
end
if tonumber(s) < now then return 2 end
redis.call('ZADD', NODES, now + ttl, node)
return 1
`;

/** KEYS nodes; ARGV node, leaseMs -> 1: the lease now ends in leaseMs (a stopping node's grace). */
export const CUT = `${COMMON}
local node, ms = ARGV[1], tonumber(ARGV[2])
if not redis.call('ZSCORE', NODES, node) then return 0 end
redis.call('ZADD', NODES, now_ms() + ms, node)
return 1
`;

/**
 * Makes the node's registered pairs exactly the given ones and renews its lease.
 * KEYS nodes; ARGV node, ttlMs, announce (1/0), then key, since pairs.
 * -> flat list of kind, group, user, count for each transition (only when announcing).
 */
export const SYNC = `${COMMON}
local node, ttl, announce = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local nkey = P .. ':n:' .. node
local want = {}
for i = 4, #ARGV, 2 do want[ARGV[i]] = ARGV[i + 1] end
local out = {}
local old = redis.call('HKEYS', nkey)
for _, f in ipairs(old) do
  if want[f] == nil then
    redis.call('HDEL', nkey, f)
    local g, u = split(f)
    local c = unhold(g, u)
    if c and announce then out[#out + 1] = 'leave'; out[#out + 1] = g; out[#out + 1] = u; out[#out + 1] = c end
  else
    want[f] = nil
  end
end
for f, since in pairs(want) do
  redis.call('HSET', nkey, f, since)
  local g, u = split(f)
  local c = hold(g, u, since)
  if c and announce then out[#out + 1] = 'join'; out[#out + 1] = g; out[#out + 1] = u; out[#out + 1] = c end
end
redis.call('ZADD', NODES, now_ms() + ttl, node)
redis.call('DEL', P .. ':reaped:' .. node)
return out
`;

/**
 * Releases up to `batch` pairs of one node whose lease ran out.
 * KEYS nodes; ARGV batch -> {} when no lease ran out, else {node, done (1/0), then group, user, count per leave}.
 */
export const REAP = `${COMMON}
local batch = tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', NODES, '-inf', now_ms(), 'LIMIT', 0, 1)
if #dead == 0 then return {} end
local node = dead[1]
local nkey = P .. ':n:' .. node
local out = {node, 0}
local fields = redis.call('HRANDFIELD', nkey, batch)
for _, f in ipairs(fields) do
  redis.call('HDEL', nkey, f)
  local g, u = split(f)
  local c = unhold(g, u)
  if c then out[#out + 1] = g; out[#out + 1] = u; out[#out + 1] = c end
end
if redis.call('EXISTS', nkey) == 0 then
  redis.call('ZREM', NODES, node)
  redis.call('SET', P .. ':reaped:' .. node, 1, 'EX', 86400)
  out[2] = 1
end
return out
`;

/** KEYS nodes; ARGV group, user -> {present (1/0), count}. */
export const CHECK = `${COMMON}
local group, user = ARGV[1], ARGV[2]
local present = redis.call('ZSCORE', P .. ':g:' .. group, user) and 1 or 0
return {present, redis.call('ZCARD', P .. ':g:' .. group)}
`;
