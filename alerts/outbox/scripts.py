"""The Redis outbox's Lua scripts: each one step on one hash tag, atomic (see the package doc for the index)."""

ORDER_LIB = """
-- the order index (module doc): members 'tag:order:id', one per (alert, queued notice), per sink
local function id_of(member) return string.match(member, ':([^:]+)$') end
-- the oldest queued notice of an alert; a member whose id left the queue without leaving the index (an
-- outbox of the previous version acked it during a rolling deploy or a rollback) is dropped, not obeyed
local function first_of(order_key, queue, tag)
  while true do
    local first = redis.call('ZRANGEBYLEX', order_key, '[' .. tag .. ':', '[' .. tag .. ';', 'LIMIT', 0, 1)[1]
    if not first or redis.call('ZSCORE', queue, id_of(first)) then return first end
    redis.call('ZREM', order_key, first)
  end
end
-- out of the index; the next notice of each of its alerts, if held, is due at once
local function unlink(queue, order_key, held, members, id, now)
  redis.call('SREM', held, id)
  if not members then return end
  for m in string.gmatch(members, '[^\\n]+') do
    redis.call('ZREM', order_key, m)
    local following = first_of(order_key, queue, string.match(m, '^([^:]+):'))
    if following and redis.call('SREM', held, id_of(following)) == 1 then
      redis.call('ZADD', queue, 'XX', now, id_of(following))
    end
  end
end
-- the newest notice delivered per alert, for the ids_kept most recently delivered alerts
local function note_delivered(latest, latest_index, members, now, keep)
  for m in string.gmatch(members, '[^\\n]+') do
    local tag, order = string.match(m, '^([^:]+):([^:]+):')
    local known = redis.call('HGET', latest, tag)
    if not known or order > known then redis.call('HSET', latest, tag, order) end
    redis.call('ZADD', latest_index, now, tag)
  end
  local extra = redis.call('ZCARD', latest_index) - keep
  if extra > 0 then
    for _, tag in ipairs(redis.call('ZRANGE', latest_index, 0, extra - 1)) do redis.call('HDEL', latest, tag) end
    redis.call('ZREMRANGEBYRANK', latest_index, 0, extra - 1)
  end
end
-- one sink is done with id: out of its queue and index; the payload goes once every sink is done.
-- Returns whether id was queued, and its index members (false when it has none)
local function finish(queue, attempts, payloads, remaining, members_key, order_key, held, id, now)
  if redis.call('ZREM', queue, id) == 0 then return false, false end
  redis.call('HDEL', attempts, id)
  local members = redis.call('HGET', members_key, id)
  unlink(queue, order_key, held, members, id, now)
  if redis.call('HINCRBY', remaining, id, -1) <= 0 then
    redis.call('HDEL', remaining, id)
    redis.call('HDEL', payloads, id)
    redis.call('HDEL', members_key, id)
  end
  return true, members
end
"""

ENQUEUE = """
-- KEYS: seen, payloads, remaining, members, then per sink: queue, order ; ARGV: id, json, now, max_entries,
--       ids_kept, index members
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
if #KEYS > 4 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[3], ARGV[1], (#KEYS - 4) / 2)
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[6])  -- '' too: indexed by this version, alerts or not
  for i = 5, #KEYS, 2 do
    redis.call('ZADD', KEYS[i], ARGV[3], ARGV[1])
    for m in string.gmatch(ARGV[6], '[^\\n]+') do redis.call('ZADD', KEYS[i + 1], 0, m) end
  end
end
return 1
"""

CLAIM = ORDER_LIB + """
-- KEYS: queue, payloads, attempts, remaining, members, order, held, latest ; ARGV: now, limit, lease_end
-- -> flat [kind, id, payload or blocker, attempts, outdated]...; kind: send | held | superseded | unindexed;
-- outdated (send): the 'tag:order' of its alerts the sink already showed a later notice of, newline-separated,
-- left out of what is sent (decided in the same atomic step as the hold and the superseded drop)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local function emit(kind, id, third, fourth, fifth)
  out[#out + 1] = kind; out[#out + 1] = id; out[#out + 1] = third; out[#out + 1] = fourth; out[#out + 1] = fifth
end
for _, id in ipairs(ids) do
  local members = redis.call('HGET', KEYS[5], id)
  if not members then
    -- queued by the previous version (no index members): Python indexes it and claims again; not leased
    emit('unindexed', id, redis.call('HGET', KEYS[2], id), false, false)
  else
    local blocker, alerts, outdated = false, 0, {}  -- a notice without alerts is never superseded (as in memory)
    for m in string.gmatch(members, '[^\\n]+') do
      local tag, order = string.match(m, '^([^:]+):([^:]+):')
      local first = first_of(KEYS[6], KEYS[1], tag)
      if first and first ~= m then blocker = id_of(first) break end
      local known = redis.call('HGET', KEYS[8], tag)
      alerts = alerts + 1
      if known and order <= known then outdated[#outdated + 1] = tag .. ':' .. order end
    end
    if blocker then
      redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
      redis.call('SADD', KEYS[7], id)
      redis.call('HSETNX', KEYS[3], id, 0)  -- a waiting retry to versions before the index (module doc)
      emit('held', id, blocker, false, false)
    elseif alerts > 0 and #outdated == alerts then
      finish(KEYS[1], KEYS[3], KEYS[2], KEYS[4], KEYS[5], KEYS[6], KEYS[7], id, ARGV[1])
      emit('superseded', id, false, false, false)
    else
      redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
      redis.call('SREM', KEYS[7], id)
      redis.call('HSETNX', KEYS[3], id, 0)  -- leased: due after later notices, so recorded as for held ones
      emit('send', id, redis.call('HGET', KEYS[2], id), redis.call('HGET', KEYS[3], id),
           table.concat(outdated, '\\n'))
    end
  end
end
return out
"""

INDEX = """
-- KEYS: members, then per sink: queue, order ; ARGV: id, index members -> how many sinks it was indexed for
-- (an entry the previous version queued: it joins the order index of every sink that still holds it)
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
local indexed = 0
for i = 2, #KEYS, 2 do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    for m in string.gmatch(ARGV[2], '[^\\n]+') do redis.call('ZADD', KEYS[i + 1], 0, m) end
    indexed = indexed + 1
  end
end
return indexed
"""

DONE = ORDER_LIB + """
-- KEYS: queue, attempts, payloads, remaining, members, order, held, delivered, latest, latest index
-- ARGV: id, now, ids_kept
local done, members = finish(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[1], ARGV[2])
if not done then return 0 end
redis.call('ZADD', KEYS[8], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[8]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[8], 0, extra - 1) end
if members then note_delivered(KEYS[9], KEYS[10], members, ARGV[2], tonumber(ARGV[3])) end
return 1
"""

ABANDON = ORDER_LIB + """
-- KEYS: queue, attempts, payloads, remaining, members, order, held, dead, dead index
-- ARGV: id, now, max_dead, attempts ('' = the failures recorded) -> evicted ids
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {} end
local payload = redis.call('HGET', KEYS[3], ARGV[1])
local tries = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
if ARGV[4] ~= '' then tries = ARGV[4] end
local _, members = finish(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[1], ARGV[2])
if not payload then return {} end
redis.call('HSET', KEYS[8], ARGV[1], cjson.encode({payload = payload, attempts = tonumber(tries), at = ARGV[2],
                                                    members = members or ''}))
redis.call('ZADD', KEYS[9], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[9]) - tonumber(ARGV[3])
if extra <= 0 then return {} end
local old = redis.call('ZRANGE', KEYS[9], 0, extra - 1)
for _, id in ipairs(old) do redis.call('HDEL', KEYS[8], id) end
redis.call('ZREMRANGEBYRANK', KEYS[9], 0, extra - 1)
return old
"""

REDRIVE = """
-- KEYS: dead, dead index, queue, payloads, remaining, members, order, attempts ; ARGV: now, id or '' (all)
-- -> how many
local ids = {ARGV[2]}
if ARGV[2] == '' then ids = redis.call('ZRANGE', KEYS[2], 0, -1) end
local moved = 0
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local entry = cjson.decode(raw)
    redis.call('HSETNX', KEYS[4], id, entry.payload)
    if type(entry.members) == 'string' and entry.members ~= '' then
      redis.call('HSETNX', KEYS[6], id, entry.members)
      for m in string.gmatch(entry.members, '[^\\n]+') do redis.call('ZADD', KEYS[7], 0, m) end
    end
    redis.call('HINCRBY', KEYS[5], id, 1)
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    redis.call('HSETNX', KEYS[8], id, 0)  -- due after later notices of its alerts: see CLAIM
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    moved = moved + 1
  end
end
return moved
"""

OLDEST = """
-- KEYS: queue, seen ; ARGV: -> the smallest enqueue time (seen score) among the queued ids, or false
local oldest = false
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local at = redis.call('ZSCORE', KEYS[2], id)
  if at and (not oldest or tonumber(at) < oldest) then oldest = tonumber(at) end
end
if oldest then return tostring(oldest) end
return false
"""

FAILED = """
-- KEYS: queue, attempts ; ARGV: id, retry_at
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""


ADOPT = """
-- KEYS: old queue, old attempts, new queue, remaining, payloads, old dead, old dead index, new dead,
--       new dead index, members, old order, old held, new order, old latest, old latest index, new latest,
--       new latest index, new attempts ; ARGV: now -> entries now queued (or dead-lettered) for the new sink
local moved = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('ZSCORE', KEYS[3], id) then
    if redis.call('HINCRBY', KEYS[4], id, -1) <= 0 then
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[10], id)
    end
  else
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    redis.call('HSETNX', KEYS[18], id, 0)  -- all due at once: see CLAIM
    local members = redis.call('HGET', KEYS[10], id)
    if members then
      for m in string.gmatch(members, '[^\\n]+') do redis.call('ZADD', KEYS[13], 0, m) end
    end
    moved = moved + 1
  end
end
local dead = redis.call('HGETALL', KEYS[6])
for i = 1, #dead, 2 do
  redis.call('HSET', KEYS[8], dead[i], dead[i + 1])
  redis.call('ZADD', KEYS[9], redis.call('ZSCORE', KEYS[7], dead[i]) or ARGV[1], dead[i])
  moved = moved + 1
end
local latest = redis.call('HGETALL', KEYS[14])
for i = 1, #latest, 2 do
  local known = redis.call('HGET', KEYS[16], latest[i])
  if not known or latest[i + 1] > known then redis.call('HSET', KEYS[16], latest[i], latest[i + 1]) end
  redis.call('ZADD', KEYS[17], redis.call('ZSCORE', KEYS[15], latest[i]) or ARGV[1], latest[i])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[6], KEYS[7], KEYS[11], KEYS[12], KEYS[14], KEYS[15])
return moved
"""

SCHEMA = """
-- KEYS: schema marker ; ARGV: this version's schema -> the schema found (0: none). Raised to ours, never lowered,
-- and written only when lower: a restart on a full Redis reads it without a write Redis would refuse
local found = tonumber(redis.call('GET', KEYS[1]) or '0')
if found < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return found
"""

REPAIR = """
-- KEYS: members, payloads, queue, order, held ; ARGV: what, items... -> how many were dropped or put back
-- what: 'members' (ids: dropped without a payload), 'held' (ids: dropped when not queued), 'order' (index members:
-- dropped when their id is not queued), 'queued' (ids: their members put back in the order index)
local changed = 0
for i = 2, #ARGV do
  local item = ARGV[i]
  if ARGV[1] == 'members' then
    if redis.call('HEXISTS', KEYS[2], item) == 0 then changed = changed + redis.call('HDEL', KEYS[1], item) end
  elseif ARGV[1] == 'held' then
    if not redis.call('ZSCORE', KEYS[3], item) then changed = changed + redis.call('SREM', KEYS[5], item) end
  elseif ARGV[1] == 'order' then
    if not redis.call('ZSCORE', KEYS[3], string.match(item, ':([^:]+)$')) then
      changed = changed + redis.call('ZREM', KEYS[4], item)
    end
  else
    local members = redis.call('ZSCORE', KEYS[3], item) and redis.call('HGET', KEYS[1], item)
    if members then
      for m in string.gmatch(members, '[^\\n]+') do changed = changed + redis.call('ZADD', KEYS[4], 0, m) end
    end
  end
end
return changed
"""
