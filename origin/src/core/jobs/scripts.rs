//! The Lua scripts that move a job between states atomically in Redis. Every key carries its
//! queue's hash tag, so on a Redis Cluster a queue lives in one slot; there each script call
//! names one queue's keys and runs on one node (on a single Redis, `ENQUEUE` may name several
//! queues, so that the jobs of one write go in one call).

use std::sync::LazyLock;

use redis::Script;

/// Adds jobs of one or more queues, each unless a pending job of its queue has its idempotency
/// key (a later job of the same call included). KEYS: per queue, its idempotency hash, stream
/// and delayed set. ARGV: now (ms); then per queue, in the order of KEYS, its job hash prefix
/// and its number of jobs, then six values per job: id, key ('' for none), kind, payload, due
/// (ms, 0 for now), the enqueuing span's `traceparent` ('' for none). Returns `{created (0|1),
/// id}` per job, flattened, in the order given. On a Redis Cluster each call names one queue
/// (its keys share the queue's slot); on one node a call may name several, so that the jobs of
/// one write go in one call.
pub static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local replies = {}
local a = 2
for q = 1, #KEYS, 3 do
  local pending, stream, delayed = KEYS[q], KEYS[q + 1], KEYS[q + 2]
  local prefix, count = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, count do
    local id, key, due = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 4])
    local existing = key ~= '' and redis.call('HGET', pending, key)
    if existing and redis.call('EXISTS', prefix .. existing) == 1 then
      replies[#replies + 1] = 0
      replies[#replies + 1] = existing
    else
      if key ~= '' then redis.call('HSET', pending, key, id) end
      local state = due > 0 and 'delayed' or 'waiting'
      redis.call('HSET', prefix .. id, 'kind', ARGV[a + 2], 'payload', ARGV[a + 3], 'key', key,
        'attempts', 0, 'enqueued', ARGV[1], 'state', state, 'trace', ARGV[a + 5])
      if due > 0 then
        redis.call('ZADD', delayed, due, id)
      else
        redis.call('XADD', stream, '*', 'id', id)
      end
      replies[#replies + 1] = 1
      replies[#replies + 1] = id
    end
    a = a + 6
  end
end
return replies
",
    )
});

/// Lua: `start(prefix, id)` marks a delivered job active: counts its attempt and releases its
/// idempotency key in `KEYS[1]` (a change made from now on needs a run of its own). Returns the
/// job hash's fields, or false when the job no longer exists.
const START_ONE: &str = r"
local function start(prefix, id)
  local job = prefix .. id
  local fields = redis.call('HGETALL', job)
  if #fields == 0 then return false end
  local attempts = 1
  for f = 1, #fields, 2 do
    local name = fields[f]
    if name == 'key' and fields[f + 1] ~= '' and redis.call('HGET', KEYS[1], fields[f + 1]) == id then
      redis.call('HDEL', KEYS[1], fields[f + 1])
    elseif name == 'attempts' then
      attempts = tonumber(fields[f + 1]) + 1
      fields[f + 1] = tostring(attempts)
    elseif name == 'state' then
      fields[f + 1] = 'active'
    end
  end
  redis.call('HSET', job, 'attempts', attempts, 'state', 'active')
  return fields
end
";

/// Marks jobs delivered by a blocking read active (see `START_ONE`). KEYS: idempotency hash.
/// ARGV: job hash prefix, then the ids. Returns, per id, the job hash's fields, or false when
/// the job no longer exists.
pub static START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{START_ONE}
local replies = {{}}
for i = 2, #ARGV do replies[#replies + 1] = start(ARGV[1], ARGV[i]) end
return replies
"
    ))
});

/// Reads up to a count of waiting jobs without blocking and marks them active (see
/// `START_ONE`), in one round trip: what a worker does while its queue has a backlog. Entries
/// whose job no longer exists are acknowledged and deleted. KEYS: idempotency hash, stream.
/// ARGV: job hash prefix, group, consumer, count. Returns `{entry, id, fields}` per job taken.
pub static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{START_ONE}
local read = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '>')
local taken, vanished = {{}}, {{}}
if read then
  for _, entry in ipairs(read[1][2]) do
    local values, id = entry[2], nil
    for f = 1, #values, 2 do
      if values[f] == 'id' then id = values[f + 1] end
    end
    local fields = id and start(ARGV[1], id)
    if fields then
      taken[#taken + 1] = {{entry[1], id, fields}}
    else
      vanished[#vanished + 1] = entry[1]
    end
  end
end
if #vanished > 0 then
  redis.call('XACK', KEYS[2], ARGV[2], unpack(vanished))
  redis.call('XDEL', KEYS[2], unpack(vanished))
end
return taken
"
    ))
});

/// Finishes jobs. KEYS: stream, completed set. ARGV: now (ms), how long to keep the records
/// (ms), job hash prefix, then pairs of stream entry and id. Returns how many jobs were still
/// there.
pub static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entries = {}
for i = 4, #ARGV, 2 do entries[#entries + 1] = ARGV[i] end
redis.call('XACK', KEYS[1], 'workers', unpack(entries))
redis.call('XDEL', KEYS[1], unpack(entries))
local finished = {}
for i = 5, #ARGV, 2 do
  local job = ARGV[3] .. ARGV[i]
  if redis.call('PEXPIRE', job, ARGV[2]) == 1 then
    redis.call('HSET', job, 'state', 'completed')
    finished[#finished + 1] = ARGV[1]
    finished[#finished + 1] = ARGV[i]
  end
end
if #finished > 0 then redis.call('ZADD', KEYS[2], unpack(finished)) end
return #finished / 2
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
