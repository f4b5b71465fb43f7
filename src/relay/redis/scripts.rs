//! Key and channel names, and the Lua scripts that keep the shared state consistent: each
//! script is one atomic step, so two nodes never both decide "first" or "last" for a user.

use redis::Script;

pub fn user_channel(user: &str) -> String {
    format!("sb:u:{user}")
}
pub fn watch_channel(user: &str) -> String {
    format!("sb:w:{user}")
}

/// SADD the node to the user's set; 1 when the user had no node before (first anywhere).
pub const ARRIVE: &str = r"
local before = redis.call('SCARD', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if before == 0 then return 1 end
return 0";

/// SREM the node from the user's set; 1 when that removed the user's last node.
pub const LEAVE: &str = r"
local removed = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0";

/// Adds a session and returns the oldest ones past the cap, removed.
pub const OPEN: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess <= 0 then return {} end
local old = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
for _, m in ipairs(old) do redis.call('ZREM', KEYS[1], m) end
return old";

/// GCRA over a batch of sends: for each key in order (a user may appear more than once),
/// 0 when that send may go now, else the milliseconds until one may.
pub const RATE: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tau = interval * (tonumber(ARGV[3]) - 1)
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  if now < tat - tau then
    out[i] = math.ceil(tat - tau - now)
  else
    redis.call('SET', key, tostring(tat + interval), 'PX', math.ceil(tau + interval) + 1000)
    out[i] = 0
  end
end
return out";

/// Removes a dead node from a user's sets; 1 when the user has no node left, -1 (and nothing
/// done) when the node's liveness key is back, so a slow node is never reaped by mistake.
pub const REAP: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local removed = redis.call('SREM', KEYS[1], ARGV[1])
local prefix = ARGV[1] .. '|'
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then redis.call('ZREM', KEYS[2], m) end
end
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0";

/// Puts a node's entries for a user back in line in one step: drops its listed sessions
/// (the caller re-adds the real ones) and makes sure the node is in the user's set. 1 when
/// no node had the user before (so peers may have announced them offline).
pub const RESYNC: &str = r"
local prefix = ARGV[1] .. '|'
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then redis.call('ZREM', KEYS[2], m) end
end
local before = redis.call('SCARD', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
if before == 0 then return 1 end
return 0";

/// The scripts, loaded once per relay.
pub struct Scripts {
    pub arrive: Script,
    pub leave: Script,
    pub open: Script,
    pub rate: Script,
    pub reap: Script,
    pub resync: Script,
}

impl Scripts {
    /// All scripts.
    pub fn new() -> Self {
        Scripts {
            arrive: Script::new(ARRIVE),
            leave: Script::new(LEAVE),
            open: Script::new(OPEN),
            rate: Script::new(RATE),
            reap: Script::new(REAP),
            resync: Script::new(RESYNC),
        }
    }
}
