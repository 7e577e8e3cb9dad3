//! Lua scripts: each presence decision or lookup is one atomic round trip to Redis.
//!
//! They read liveness keys they are not passed in KEYS, which a single Redis (or a primary
//! with replicas) allows; on Redis Cluster they would need hash tags (README, "Scaling out").
//! Key and channel names come from wire.rs: `$USER`, `$ALIVE` and `$SERVER` in a script's
//! text stand for its prefixes.

use super::wire::{ALIVE_PREFIX, SERVER_PREFIX, USER_PREFIX};
use redis::Script;
use std::sync::LazyLock;

/// A script's text with the key prefixes of wire.rs put in.
fn with_prefixes(lua: &str) -> String {
    lua.replace("$USER", USER_PREFIX)
        .replace("$ALIVE", ALIVE_PREFIX)
        .replace("$SERVER", SERVER_PREFIX)
}

fn script(lua: &str) -> Script {
    Script::new(&with_prefixes(lua))
}

/// KEYS[1] user key; ARGV[1] our token, ARGV[2] our server id. Claims the user unless another
/// live server holds it. Returns 1 (claimed) or 0 (in use elsewhere).
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| script(CLAIM_LUA));
const CLAIM_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner = string.match(cur, '^(.*)|') or cur
  if owner ~= ARGV[2] and redis.call('EXISTS', '$ALIVE' .. owner) == 1 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"#;

/// KEYS[1] user key; ARGV[1] token. Deletes the presence only if it is still this session's.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| script(RELEASE_LUA));
const RELEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// ARGV: user ids. Returns, for each, the id of the live server holding its session, or ''
/// (no session, or its server's liveness key expired). Delivery looks its recipients up
/// with it, once per publisher batch; the friend list asks who is online.
pub static OWNERS: LazyLock<Script> = LazyLock::new(|| script(OWNERS_LUA));
const OWNERS_LUA: &str = r#"
local out, alive = {}, {}
for i = 1, #ARGV do
  local cur = redis.call('GET', '$USER' .. ARGV[i])
  local owner = cur and (string.match(cur, '^(.*)|') or cur)
  if owner then
    if alive[owner] == nil then
      alive[owner] = redis.call('EXISTS', '$ALIVE' .. owner) == 1
    end
    if not alive[owner] then owner = nil end
  end
  out[i] = owner or ''
end
return out
"#;

/// ARGV[1] server id, ARGV[2] the tokens of its live sessions joined by ','; ARGV[3..] their
/// user ids in the same order. After a Redis restart or a lost link: puts the server's
/// sessions back, and removes presence left for this server by sessions that are gone.
pub static RESYNC: LazyLock<Script> = LazyLock::new(|| script(RESYNC_LUA));
const RESYNC_LUA: &str = r#"
local sid = ARGV[1]
local tokens = {}
for t in string.gmatch(ARGV[2], '[^,]+') do tokens[#tokens + 1] = t end
local live = {}
for i = 3, #ARGV do
  local key = '$USER' .. ARGV[i]
  live[key] = true
  redis.call('SET', key, tokens[i - 2])
end
local cursor, removed = '0', 0
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', '$USER*', 'COUNT', 1000)
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
"#;

/// KEYS[1] a user's presence key, ARGV[1] a control message: published to that user's server.
pub static FLUSH: LazyLock<Script> = LazyLock::new(|| script(FLUSH_LUA));
const FLUSH_LUA: &str = r#"
local c = redis.call('GET', KEYS[1])
if c then return redis.call('PUBLISH', '$SERVER' .. (string.match(c, '^(.*)|') or c), ARGV[1]) end
return 0
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_comes_from_wire() {
        for lua in [CLAIM_LUA, RELEASE_LUA, OWNERS_LUA, RESYNC_LUA, FLUSH_LUA] {
            let code = with_prefixes(lua);
            assert!(!code.contains('$'), "a placeholder was left: {code}");
            assert!(!lua.contains("chat:"), "a key name written out: {lua}");
        }
    }
}
