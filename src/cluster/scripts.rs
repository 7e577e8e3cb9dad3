//! Lua scripts: each presence decision or delivery is one atomic round trip to Redis.
//!
//! They read `chat:alive:<sid>` keys they are not passed in KEYS, which a single Redis (or a
//! primary with replicas) allows; on Redis Cluster they would need hash tags (README,
//! "Scaling out").

use redis::Script;
use std::sync::LazyLock;

/// KEYS[1] user key; ARGV[1] our token, ARGV[2] our server id. Claims the user unless another
/// live server holds it. Returns 1 (claimed) or 0 (in use elsewhere).
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner = string.match(cur, '^(.*)|') or cur
  if owner ~= ARGV[2] and redis.call('EXISTS', 'chat:alive:' .. owner) == 1 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"#,
    )
});

/// KEYS[1] user key; ARGV[1] token. Deletes the presence only if it is still this session's.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// Delivers a batch of messages in one round trip. ARGV[1] the sending server's id, then
/// three arguments per message: its id (`mid`), its frame, its recipients as `uid,uid,...`.
///
/// Groups each message's recipients by the live server that holds their session, and
/// publishes ONE payload per target server for the whole batch:
/// `<sender sid>\n` followed by `<mid> <frame length> <uid,uid>\n<frame>` per message, in
/// batch order (so per-pair order holds). Returns one entry per message:
/// `{unreached, server, "uid,uid", server, "uid,uid", ...}` where `unreached` is the
/// recipients nobody received (no session, a dead server, a publish that reached no
/// subscriber) joined by ',', which must be stored, and the pairs name the publishes that
/// were received, which stay pending until that server confirms them.
pub static DELIVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local alive, owner_of = {}, {}
local parts_of, order, placed = {}, {}, {}
local results = {}
for m = 2, #ARGV, 3 do
  local mid, frame, list = ARGV[m], ARGV[m + 1], ARGV[m + 2]
  local k = #results + 1
  local groups, gorder, offline = {}, {}, {}
  for uid in string.gmatch(list, '[^,]+') do
    local owner = owner_of[uid]
    if owner == nil then
      local cur = redis.call('GET', 'chat:user:' .. uid)
      owner = cur and (string.match(cur, '^(.*)|') or cur) or false
      if owner then
        if alive[owner] == nil then
          alive[owner] = redis.call('EXISTS', 'chat:alive:' .. owner) == 1
        end
        if not alive[owner] then owner = false end
      end
      owner_of[uid] = owner
    end
    if owner then
      if groups[owner] == nil then groups[owner] = {}; gorder[#gorder + 1] = owner end
      local g = groups[owner]
      g[#g + 1] = uid
    else
      offline[#offline + 1] = uid
    end
  end
  results[k] = {offline, {}}
  for _, owner in ipairs(gorder) do
    local csv = table.concat(groups[owner], ',')
    if parts_of[owner] == nil then
      parts_of[owner] = {ARGV[1] .. '\n'}; order[#order + 1] = owner; placed[owner] = {}
    end
    local parts = parts_of[owner]
    parts[#parts + 1] = mid .. ' ' .. #frame .. ' ' .. csv .. '\n' .. frame
    local p = placed[owner]
    p[#p + 1] = {k, csv}
  end
end
for _, owner in ipairs(order) do
  local n = redis.call('PUBLISH', 'chat:server:' .. owner, table.concat(parts_of[owner]))
  for _, entry in ipairs(placed[owner]) do
    local r = results[entry[1]]
    if n == 0 then
      for uid in string.gmatch(entry[2], '[^,]+') do r[1][#r[1] + 1] = uid end
    else
      r[2][#r[2] + 1] = owner
      r[2][#r[2] + 1] = entry[2]
    end
  end
end
local out = {}
for k, r in ipairs(results) do
  local entry = {table.concat(r[1], ',')}
  for _, v in ipairs(r[2]) do entry[#entry + 1] = v end
  out[k] = entry
end
return out
"#,
    )
});

/// ARGV: user ids. Returns 1 for each one with a session on a live server, else 0.
pub static ONLINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out, alive = {}, {}
for i = 1, #ARGV do
  local cur = redis.call('GET', 'chat:user:' .. ARGV[i])
  local owner = cur and (string.match(cur, '^(.*)|') or cur)
  local up = 0
  if owner then
    if alive[owner] == nil then
      alive[owner] = redis.call('EXISTS', 'chat:alive:' .. owner) == 1
    end
    if alive[owner] then up = 1 end
  end
  out[i] = up
end
return out
"#,
    )
});

/// ARGV[1] server id, ARGV[2] the tokens of its live sessions joined by ','; ARGV[3..] their
/// user ids in the same order. After a Redis restart or a lost link: puts the server's
/// sessions back, and removes presence left for this server by sessions that are gone.
pub static RESYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local sid = ARGV[1]
local tokens = {}
for t in string.gmatch(ARGV[2], '[^,]+') do tokens[#tokens + 1] = t end
local live = {}
for i = 3, #ARGV do
  local key = 'chat:user:' .. ARGV[i]
  live[key] = true
  redis.call('SET', key, tokens[i - 2])
end
local cursor, removed = '0', 0
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', 'chat:user:*', 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    if not live[key] then
      local cur = redis.call('GET', key)
      if cur and string.sub(cur, 1, #sid + 1) == sid .. '|' then
        redis.call('DEL', key); removed = removed + 1
      end
    end
  end
until cursor == '0'
return removed
"#,
    )
});
