//! The Lua scripts that move a job between states atomically in Redis. Every key a script
//! touches belongs to one queue and carries the queue's hash tag, so on a Redis Cluster a
//! queue lives in one slot and each script runs on one node.

use std::sync::LazyLock;

use redis::Script;

/// Adds a job unless a pending job has its idempotency key.
/// KEYS: idempotency hash, stream, delayed set. ARGV: id, key ('' for none), kind, payload,
/// now (ms), due (ms, 0 for now), job hash prefix. Returns `{created (0|1), id}`.
pub static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local prefix = ARGV[7]
if ARGV[2] ~= '' then
  local existing = redis.call('HGET', KEYS[1], ARGV[2])
  if existing and redis.call('EXISTS', prefix .. existing) == 1 then
    return {0, existing}
  end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
end
local job = prefix .. ARGV[1]
redis.call('HSET', job, 'kind', ARGV[3], 'payload', ARGV[4], 'key', ARGV[2],
  'attempts', 0, 'enqueued', ARGV[5], 'state', 'waiting')
if tonumber(ARGV[6]) > 0 then
  redis.call('HSET', job, 'state', 'delayed')
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
else
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
end
return {1, ARGV[1]}
",
    )
});

/// Marks a delivered job active: counts the attempt and releases its idempotency key (a
/// change made from now on needs a run of its own). KEYS: idempotency hash. ARGV: job hash,
/// id. Returns the job hash's fields, or nil when the job no longer exists.
pub static START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', ARGV[1]) == 0 then return nil end
local key = redis.call('HGET', ARGV[1], 'key')
if key and key ~= '' and redis.call('HGET', KEYS[1], key) == ARGV[2] then
  redis.call('HDEL', KEYS[1], key)
end
redis.call('HINCRBY', ARGV[1], 'attempts', 1)
redis.call('HSET', ARGV[1], 'state', 'active')
return redis.call('HGETALL', ARGV[1])
",
    )
});

/// Finishes a job. KEYS: stream, completed set. ARGV: stream entry, job hash, id, now (ms),
/// how long to keep the record (ms).
pub static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('XACK', KEYS[1], 'workers', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', ARGV[2]) == 0 then return 0 end
redis.call('HSET', ARGV[2], 'state', 'completed')
redis.call('PEXPIRE', ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
",
    )
});

/// Records a failed run, then delays the job for a retry or moves it to the dead-letter set.
/// KEYS: stream, delayed set, dead set, failed set. ARGV: stream entry, job hash, id, now (ms),
/// due (ms; 0 for dead), error, attempt.
pub static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('XACK', KEYS[1], 'workers', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', ARGV[2]) == 0 then return 0 end
redis.call('HSET', ARGV[2], 'last_error', ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3] .. '#' .. ARGV[7])
if tonumber(ARGV[5]) > 0 then
  redis.call('HSET', ARGV[2], 'state', 'delayed')
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
else
  redis.call('HSET', ARGV[2], 'state', 'dead')
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
end
return 1
",
    )
});

/// Moves delayed jobs whose time has come onto the stream. KEYS: delayed set, stream.
/// ARGV: now (ms), job hash prefix. Returns `{moved, next due (ms) or ''}`.
pub static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  if redis.call('EXISTS', ARGV[2] .. id) == 1 then
    redis.call('HSET', ARGV[2] .. id, 'state', 'waiting')
    redis.call('XADD', KEYS[2], '*', 'id', id)
  end
end
local nextdue = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nextdue[2] or ''}
",
    )
});

/// Sends a dead job back to the stream with its attempts reset. KEYS: dead set, stream.
/// ARGV: job hash, id. Returns 1 when the job was dead.
pub static RETRY_DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', ARGV[1], 'attempts', 0, 'state', 'waiting')
redis.call('XADD', KEYS[2], '*', 'id', ARGV[2])
return 1
",
    )
});

/// Drops records older than a cutoff, then the oldest beyond a count. KEYS: the set.
/// ARGV: cutoff (ms), count kept, job hash prefix, '1' to delete the job hashes too.
pub static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[1], id)
    if ARGV[4] == '1' then redis.call('DEL', ARGV[3] .. id) end
  end
  return #ids
end
local removed = drop(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000))
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess > 0 then
  removed = removed + drop(redis.call('ZRANGE', KEYS[1], 0, math.min(excess, 1000) - 1))
end
return removed
",
    )
});
