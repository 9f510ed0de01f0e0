package redis

import goredis "github.com/redis/go-redis/v9"

// appendScript appends records to one stream if the stream is at the
// expected version, all or none.
//
//	KEYS[1] <prefix>stream:<id>  KEYS[2] <prefix>log  KEYS[3] <prefix>seq
//	ARGV[1] expected version, ARGV[2] stream id, then type, data per record.
//
// It returns {1, new version, last position} or {0, actual version}.
// Positions are formatted with %d: tostring would switch to exponent
// notation above 1e14.
var appendScript = goredis.NewScript(`
local v = redis.call('LLEN', KEYS[1])
if v ~= tonumber(ARGV[1]) then return {0, v} end
local n = (#ARGV - 2) / 2
local last = redis.call('INCRBY', KEYS[3], n)
local pos = last - n
local ps = {}
for i = 1, n do
  pos = pos + 1
  v = v + 1
  local p = string.format('%d', pos)
  redis.call('XADD', KEYS[2], '0-' .. p, 's', ARGV[2], 'v', string.format('%d', v), 't', ARGV[2*i+1], 'd', ARGV[2*i+2])
  ps[#ps+1] = p
  if #ps == 512 then redis.call('RPUSH', KEYS[1], unpack(ps)); ps = {} end
end
if #ps > 0 then redis.call('RPUSH', KEYS[1], unpack(ps)) end
return {1, v, last}
`)

// loadScript returns the log entries of one stream from a 0-based index on,
// in version order, in XRANGE's shape: {{id, {field, value, ...}}, ...}.
//
//	KEYS[1] <prefix>stream:<id>  KEYS[2] <prefix>log  ARGV[1] start index
var loadScript = goredis.NewScript(`
local ps = redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2] or -1)
local out = {}
for i = 1, #ps do
  local id = '0-' .. ps[i]
  local e = redis.call('XRANGE', KEYS[2], id, id)
  if #e == 0 then return redis.error_reply('ordersystem: log entry ' .. id .. ' of ' .. KEYS[1] .. ' is missing') end
  out[i] = e[1]
end
return out
`)

// snapshotScript stores a snapshot unless a higher version is stored.
// Versions are compared as decimal strings (length, then bytes) so that no
// precision is lost to Lua's doubles.
//
//	KEYS[1] <prefix>snapshot:<id>  ARGV[1] version  ARGV[2] data
var snapshotScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and (#cur > #ARGV[1] or (#cur == #ARGV[1] and cur > ARGV[1])) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
return 1
`)

// rmsnapCommitScript switches a partition's read-model snapshot to a new
// generation whose chunks are written (with an expiry, so that a writer
// that dies before its commit leaves nothing for long): it makes the
// chunks permanent, refuses if one is missing, stores the manifest and
// returns the manifest it replaced (nil when none), whose chunks the
// caller deletes. Every key shares the partition's hash tag.
//
//	KEYS[1] <prefix>{p<N>}:rmsnap  KEYS[2..] the chunks  ARGV[1] manifest
var rmsnapCommitScript = goredis.NewScript(`
for i = 2, #KEYS do
  if redis.call('PERSIST', KEYS[i]) == 0 and redis.call('EXISTS', KEYS[i]) == 0 then
    return redis.error_reply('ordersystem: read-model snapshot chunk ' .. KEYS[i] .. ' is missing')
  end
end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
return old
`)
