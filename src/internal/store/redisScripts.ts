/**
 * The Redis store's Lua scripts: every change of a job's state is one script, so it is atomic on
 * the server. Each script works on one queue: its keys all start with the queue's base
 * `{<prefix>:<queue>}` (`redis.ts`'s `queueBase`: escaped for a name holding '}'), one hash tag, so
 * they live in one Redis Cluster slot. The base is passed as `KEYS[1]` (the queue's meta hash) and
 * the other keys are built from it, as BullMQ does.
 *
 * Keys of a queue (B = the base):
 * - `B:job:<id>`      hash: the job (see `redis.ts` for the fields)
 * - `B:ready:<task>`  zset: visible queued jobs of a task, score −rank, member `<seq, 16 digits><id>`
 *                     (equal scores sort by member: FIFO within a rank)
 * - `B:delayed`       zset: queued jobs not yet visible, score visibleAt
 * - `B:running`       zset: running jobs, score lease expiry
 * - `B:tokens`        hash: lease token → job id
 * - `B:dedup`         hash: dedup key → the unfinished job holding it (a `dedupWhile: "queued"`
 *                     job's entry goes when it starts)
 * - `B:window`        hash: dedup key → the job whose throttle window (its `dedupUntil` field) holds
 *                     it whatever its state; an entry past its window is dropped by the next enqueue
 *                     of its key, or the job's purge
 * - `B:all`           zset: every job, score seq (listing, oldest first)
 * - `B:final:<state>` zset: succeeded/dead/cancelled jobs, score finishedAt (stats, purge)
 * - `B:prio`          hash: priority → queued jobs
 * - `B:tasks`         set: the tasks that have had jobs in this queue
 * - `B:meta`          hash: paused, aging, rateLimit, rateInterval (a shared rate limit), retention
 *                     (JSON: see `RETAIN`), concurrency (a cap on the queue's running jobs: the size
 *                     of `B:running`, read by each claim)
 * - `B:rate`          zset: the window of a rate-limited queue: its last `rateLimit` claims, score
 *                     the claim's time, member `<n, 16 digits>` (`B:rateseq` counts them)
 * - `B:marker`        zset: the wake-up markers idle consumers block on (BZPOPMIN): member "0"
 *                     (score 0) when a job can be claimed now, member "1" (score the time, the
 *                     server's ms) when a delayed job becomes visible then
 * - `B:held`          zset: the stores that took a delayed job's marker for their idle consumers,
 *                     member the store's random id, score the due time it answers for: a store
 *                     killed before that time leaves an entry that ends `HOLD_GRACE` ms after it,
 *                     and the other stores' idle watches then put the marker back (`ORPHANS`)
 * - `B:gq:<group>`    zset: in a queue with a per-key cap (meta `groupConcurrency`), the visible
 *                     queued jobs of that `group` (as `B:ready:<task>`, every task's); the queue's
 *                     ungrouped jobs stay in `B:ready:<task>`
 * - `B:groups`        zset: the keys whose `B:gq:<group>` holds jobs, all scored 0 (in key order:
 *                     a claim walks them by ZRANGEBYLEX from the one after meta `groupCursor`)
 * - `B:grun:<group>`  set: the ids of the key's running jobs a claim started (its size, read by
 *                     each claim: every way a job stops running takes it out)
 * - `B:gstop`         hash: where an empty claim whose walk of the keys its budget cut short
 *                     stopped, per claim's tasks (field: the tasks as JSON), for the next to go on
 *                     (see `groupedPick`); gone when the round ends, or `STOP_AGE` ms after its
 *                     last claim (a consumer that stopped, a task list deployed away); the hash
 *                     expires `STOP_AGE` ms after the last stop written. While one
 *                     exists, meta `groupChanges` counts the jobs made ready and slots freed (see
 *                     `groupChanged`)
 * - `B:expiring`      zset: queued and blocked jobs with an expiry (`expireIn`), score their
 *                     `expire` field (its time, store ms): a claim and a reap end those past it; a
 *                     claim of one, a cancel or a redrive takes it out
 * - `B:seq`           counter
 * - `B:guard`         never written: on a Cluster every script declares it (`KEYS[2]`), so that
 *                     Redis refuses the scripts of a queue whose Cluster slot is moving (see
 *                     `redis.ts`'s `run`); on one Redis (no slots) `KEYS[2]` is the id index
 *                     `{<prefix>}:ids` instead, which `baseOf` reads only then
 * - `B:deps:<id>`, `B:waits:<id>`, `B:blocked`: job dependencies (see `DEPENDENCIES`)
 *
 * Time is the server's `TIME` unless the caller passes `now` (tests on TestClock).
 *
 * @internal
 */
import { GROUP_VISITS } from "./model.ts"

/**
 * How long (ms) a stop in `B:gstop` outlives its last claim: a round's claims follow each other at
 * once (each cut short answers \`dueIn: 0\`), so an older one is of a consumer that stopped or a task
 * list deployed away. Dropped, it costs only a round begun afresh from the cursor.
 */
export const STOP_AGE = 60_000

/** The most keyed jobs an idle watch's look for lost markers (`ORPHANS`) reads for its tasks. */
export const ORPHAN_LOOKS = 256

/**
 * Job dependencies (`NewJob.after`), the memory store's algorithm (`settled`, `attach`,
 * `unblocked`) in Lua. Keys, in the base of the job they belong to:
 * - `B:deps:<id>`   set: the jobs that run after it (its dependents, of any queue on one Redis)
 * - `B:waits:<id>`  set: its dependencies not yet succeeded (gone when none is left)
 * - `B:blocked`     zset: its blocked jobs, score seq (stats, list)
 * and fields of a job's hash: `dependents` ("1": it has some, read by `releaseDedup`, so that a job
 * without costs its settle nothing), `waitingFor` (the size of `B:waits:<id>`), `afterFailure`
 * ("run"), `failedDep`, `failedDepState` (the dependency whose end cancelled it).
 *
 * A dependency's job may be in another queue: `baseOf` finds its base from its id (a new job's
 * names its queue, see redis.ts `namedQueue`), or from the id index on one Redis. On a Cluster the
 * store refuses a dependency in another queue (another slot), so every key touched is the queue's.
 * The walk (`dependentsEnded`) reassigns `B` to each dependent's base, as `many` does per queue.
 */
const DEPENDENCIES = `
local PREFIX = string.match(B, "^{([^:%%}]+)")
local UUID = "^" .. string.rep("%x", 8) .. "%-" .. string.rep("%x", 4) .. "%-" .. string.rep("%x", 4) .. "%-" ..
  string.rep("%x", 4) .. "%-" .. string.rep("%x", 12) .. "$"
-- a queue's base, as redis.ts's queueBase makes it
local function baseOfQueue(queue)
  if string.find(queue, "}", 1, true) then
    return "{" .. PREFIX .. "%" .. string.gsub(queue, "[%%}]", {["%"] = "%25", ["}"] = "%7D"}) .. "}"
  end
  return "{" .. PREFIX .. ":" .. queue .. "}"
end
-- the id index where the script declares it (one Redis); on a Cluster it is another slot, and a job's
-- dependencies are all of its queue (the store refuses others): one not there is gone
local INDEX = KEYS[2] == "{" .. PREFIX .. "}:ids" and KEYS[2]
-- the base of the queue holding job id, nil if none does. The id index is read only for an id that
-- names no queue and is not this queue's
local function baseOf(id)
  if #id > 37 and string.sub(id, 37, 37) == ":" and string.match(string.sub(id, 1, 36), UUID) then
    local base = baseOfQueue(string.sub(id, 38))
    if redis.call("EXISTS", base .. ":job:" .. id) == 1 then return base end
    return nil
  end
  if redis.call("EXISTS", jobKey(id)) == 1 then return B end
  if not INDEX then return nil end
  local queue = redis.call("HGET", INDEX, id)
  if not queue then return nil end
  local base = baseOfQueue(queue)
  if redis.call("EXISTS", base .. ":job:" .. id) == 1 then return base end
  return nil
end
local function finalState(state)
  return state == "succeeded" or state == "dead" or state == "cancelled"
end
-- whether blocked job id (of queue B) may run: every dependency succeeded, or (afterFailure run) ended;
-- a dependency gone ended (only finished jobs are deleted)
local function unblocked(id)
  local waits = redis.call("SMEMBERS", B .. ":waits:" .. id)
  if #waits == 0 then return true end
  if redis.call("HGET", jobKey(id), "afterFailure") ~= "run" then return false end
  for _, dep in ipairs(waits) do
    local base = baseOf(dep)
    if base and not finalState(redis.call("HGET", base .. ":job:" .. dep, "state")) then return false end
  end
  return true
end
-- a job held back by its dependencies: blocked. Never placed first (its enqueue's or redrive's
-- script decides before): a ready set's entry, and the marker that wakes idle consumers for it,
-- were written only to be taken back
local function block(id)
  redis.call("HSET", jobKey(id), "state", "blocked")
  redis.call("ZADD", B .. ":blocked", redis.call("HGET", jobKey(id), "seq"), id)
end
-- a blocked job's dependencies done: queued, visible from its own run time or now, whichever is later
local function release(id, now)
  local j = jobKey(id)
  local f = redis.call("HMGET", j, "visible", "priority")
  local visible = math.max(tonumber(f[1]), now)
  redis.call("ZREM", B .. ":blocked", id)
  redis.call("HSET", j, "state", "queued", "visible", visible, "rank", rankOf(tonumber(f[2]), visible))
  queued(id)
  place(id, now)
end
-- job id (of queue B, blocked or just stored) cancelled at now by the end of its dependency dep in
-- state, not expired: its deadline goes (a redrive runs it with none). Says whether it has dependents
local function cancelledBy(id, dep, state, now)
  unexpire(id)
  redis.call("HDEL", jobKey(id), "exit")
  redis.call("HSET", jobKey(id), "failedDep", dep, "failedDepState", state)
  return endJob(id, "cancelled", now)
end
-- after job id of queue B ended in state: each blocked dependent released if it may run now, or
-- ended cancelled by it (and then its own dependents, in the same script). A succeeded one is
-- struck off its dependents' waits whatever their state (a dependent redriven later waits for
-- what it still needs only). doomed: id's job could succeed until now and never can from now on
-- (cancelled for good, or deleted: see forget); walked: a table of the jobs a batch of such ends
-- walked already (forget's), or nil
local function dependentsEnded(id, state, now, doomed, walked)
  local saved = B
  local work = {{B, id, state}}
  -- nor can what waits for it (ended, or cancelled here): each of those ended waiting for one is
  -- walked too, once, for jobs redriven to wait for it. Only then: a job that could already never
  -- succeed had its walk when it became so, and one walk per job over a graph's life keeps a chain's
  -- retention linear (not one script blocking the server for seconds)
  walked = walked or {}
  while #work > 0 do
    local item = table.remove(work)
    local ended, endedState = item[2], item[3]
    for _, dep in ipairs(redis.call("SMEMBERS", item[1] .. ":deps:" .. ended)) do
      B = baseOf(dep) or ""
      local j = jobKey(dep)
      local f = redis.call("HMGET", j, "state", "afterFailure", "expire")
      if B ~= "" and f[1] then
        if endedState == "succeeded" and redis.call("SREM", B .. ":waits:" .. dep, ended) == 1 then
          redis.call("HSET", j, "waitingFor", redis.call("SCARD", B .. ":waits:" .. dep))
        end
        if doomed and f[1] == "cancelled" and f[2] ~= "run" and not walked[dep] and
          redis.call("SISMEMBER", B .. ":waits:" .. dep, ended) == 1 then
          walked[dep] = true
          work[#work + 1] = {B, dep, "cancelled"}
        end
        if f[1] == "blocked" then
          if endedState ~= "succeeded" and f[2] ~= "run" then
            redis.call("ZREM", B .. ":blocked", dep)
            local more
            if f[3] and tonumber(f[3]) <= now then
              -- past its own expiry, which no claim or reap met yet: it expired first, and reads so
              -- (as a cancel of it does)
              redis.call("ZREM", B .. ":expiring", dep)
              redis.call("HDEL", j, "exit")
              more = endJob(dep, "cancelled", now)
            else
              more = cancelledBy(dep, ended, endedState, now)
            end
            if more then work[#work + 1] = {B, dep, "cancelled"} end
          elseif unblocked(dep) then
            release(dep, now)
          end
        end
      end
    end
  end
  B = saved
end
-- whether the job of hash key j is cancelled neither by a dependency nor by its expiry: no redrive
-- puts it back
local function cancelledForGood(j)
  local f = redis.call("HMGET", j, "state", "failedDep", "expire", "finished")
  if f[1] ~= "cancelled" or f[2] then return false end
  return not (f[3] and f[4] and f[4] ~= "" and tonumber(f[4]) >= tonumber(f[3]))
end
-- whether a redriven job id (of queue B) could never wait for ever (memory's canAllSucceed): with
-- afterFailure run, whatever its dependencies' ends (a failure is done for it); otherwise none it
-- still needs, nor one those need up the chain (through jobs not of afterFailure run), is gone (a
-- finished job deleted) or cancelled for good (neither by its own dependency nor expired: those a
-- redrive puts back to wait). Each job looked at once
local function redrivable(id)
  if cancelledForGood(jobKey(id)) then return false end
  if redis.call("HGET", jobKey(id), "afterFailure") == "run" then return true end
  local saved = B
  local work = {{B, id}}
  local seen = {}
  while #work > 0 do
    local item = table.remove(work)
    for _, dep in ipairs(redis.call("SMEMBERS", item[1] .. ":waits:" .. item[2])) do
      if not seen[dep] then
        seen[dep] = true
        B = item[1]
        local base = baseOf(dep)
        B = saved
        if not base then return false end
        if cancelledForGood(base .. ":job:" .. dep) then return false end
        if redis.call("HGET", base .. ":job:" .. dep, "afterFailure") ~= "run" then work[#work + 1] = {base, dep} end
      end
    end
  end
  return true
end
-- a new job (of queue B, stored but not placed: see addJob's held) after the jobs of after (all
-- there): it waits for those not yet succeeded (blocked), or is placed at once (→ the ms until it is
-- visible), or is cancelled at once by one already dead or cancelled
local function attach(id, after, run, now)
  local j = jobKey(id)
  local pending = 0
  local failed, failedState
  for _, dep in ipairs(after) do
    local base = baseOf(dep)
    redis.call("SADD", base .. ":deps:" .. dep, id)
    redis.call("HSET", base .. ":job:" .. dep, "dependents", "1")
    local state = redis.call("HGET", base .. ":job:" .. dep, "state")
    if state ~= "succeeded" and redis.call("SADD", B .. ":waits:" .. id, dep) == 1 then
      pending = pending + 1
      if not failed and (state == "dead" or state == "cancelled") then failed, failedState = dep, state end
    end
  end
  redis.call("HSET", j, "waitingFor", pending)
  if run then redis.call("HSET", j, "afterFailure", "run") end
  if failed and not run then
    cancelledBy(id, failed, failedState, now)
  elseif not unblocked(id) then
    block(id)
  else
    queued(id)
    place(id, now)
    return tonumber(redis.call("HGET", j, "visible")) - now
  end
end
`

const PRELUDE = `
local B = string.sub(KEYS[1], 1, -6)
local function clock(arg)
  if arg ~= "" then return tonumber(arg) end
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function jobKey(id) return B .. ":job:" .. id end
local function member(seq, id) return string.format("%016d", seq) .. id end
local function rankOf(priority, visible)
  local aging = tonumber(redis.call("HGET", B .. ":meta", "aging") or "0")
  if aging > 0 then return priority * aging - visible end
  return priority
end
-- the wake-up for a delayed job of this queue due at visible: an idle consumer that pops it wakes
-- then (the soonest time stays, whoever adds later ones: ZADD's LT by hand, which Redis before 6.2
-- refuses as a syntax error). "0" scored 0 is the wake-up for a job due now
local function markDue(visible, m)
  m = m or "1"
  local score = redis.call("ZSCORE", B .. ":marker", m)
  if not score or tonumber(visible) < tonumber(score) then redis.call("ZADD", B .. ":marker", visible, m) end
end
-- a queued job goes to its task's ready set (waking an idle consumer) or to the delayed set
-- (waking one at its time)
-- the queue's per-key cap (setGroupConcurrency), 0 for none
local function groupCap()
  return tonumber(redis.call("HGET", B .. ":meta", "groupConcurrency") or "0")
end
-- where a visible queued job of task and group ("" or nil: none) waits, and its key if in B:gq
local function readyKey(task, group)
  if group and group ~= "" and groupCap() > 0 then return B .. ":gq:" .. group, group end
  return B .. ":ready:" .. task, nil
end
-- a job made ready, or a slot freed, may give a key that a round of cut claims walked a job: counted
-- (meta groupChanges) while a round is under way (a stop in B:gstop), for the round's last claim to
-- start a fresh one (see groupedPick). The marker such a change adds does not do it: the consumer's
-- wait between the round's claims takes it, and the round's last claim said "nothing" for 5 s
local function groupChanged()
  if redis.call("EXISTS", B .. ":gstop") == 1 then redis.call("HINCRBY", B .. ":meta", "groupChanges", 1) end
end
local function placeAs(id, task, rank, seq, visible, now, group)
  if visible <= now then
    local key, g = readyKey(task, group)
    redis.call("ZADD", key, -rank, member(seq, id))
    if g then redis.call("ZADD", B .. ":groups", 0, g) end
    redis.call("ZADD", B .. ":marker", 0, "0")
    groupChanged()
  else
    redis.call("ZADD", B .. ":delayed", visible, id)
    markDue(visible)
  end
end
-- the wake-up for jobs of this queue ready now, if any is (says if it added it)
local function markReady()
  if redis.call("ZCARD", B .. ":groups") > 0 then
    redis.call("ZADD", B .. ":marker", 0, "0")
    return true
  end
  for _, task in ipairs(redis.call("SMEMBERS", B .. ":tasks")) do
    if redis.call("ZCARD", B .. ":ready:" .. task) > 0 then
      redis.call("ZADD", B .. ":marker", 0, "0")
      return true
    end
  end
  return false
end
-- while the queue's rate limit lets no claim through (the window holds its last limit claims, the
-- oldest within its interval), the time it frees (server ms), else 0; while it is full
-- (windowFull) its ready jobs are held back, not waiting for a wake-up
local function windowFreesAt(now)
  local limit = tonumber(redis.call("HGET", B .. ":meta", "rateLimit") or "0")
  if limit <= 0 or redis.call("ZCARD", B .. ":rate") < limit then return 0 end
  local oldest = redis.call("ZRANGE", B .. ":rate", 0, 0, "WITHSCORES")
  local at = tonumber(oldest[2]) + tonumber(redis.call("HGET", B .. ":meta", "rateInterval"))
  if at <= now then return 0 end
  return at
end
-- how many of limit jobs the queue's rate limit lets a claim take now (the window's free slots,
-- then its claims at least an interval old, oldest first), with the limit and its interval (0, 0:
-- none). CLAIM and PEEK both ask it: a look that allowed more than the claim would allot a queue
-- slots its claim cannot fill
local function rateAllowed(now, limit)
  local rateLimit = tonumber(redis.call("HGET", B .. ":meta", "rateLimit") or "0")
  if rateLimit <= 0 then return limit, 0, 0 end
  local rateInterval = tonumber(redis.call("HGET", B .. ":meta", "rateInterval"))
  local size = redis.call("ZCARD", B .. ":rate")
  local allowed = math.max(0, rateLimit - size)
  if allowed < limit and size > 0 then
    local oldest = redis.call("ZRANGE", B .. ":rate", 0, math.min(size, limit) - 1, "WITHSCORES")
    local i = 2
    while allowed < limit and i <= #oldest and now - tonumber(oldest[i]) >= rateInterval do
      allowed = allowed + 1
      i = i + 2
    end
  end
  return math.min(limit, allowed), rateLimit, rateInterval
end
local function windowFull(now)
  return windowFreesAt(now) > 0
end
-- how many more jobs the queue's cap (setConcurrency) lets start now: the cap less its running jobs,
-- counted from B:running in the claim's own script (a lease ended but not reaped still holds its
-- slot: its process may still run it); nil without a cap. Never a counter: every way a job stops
-- running takes it out of B:running, so nothing can leave the count wrong
local function capFree()
  local cap = tonumber(redis.call("HGET", B .. ":meta", "concurrency") or "0")
  if cap <= 0 then return nil end
  return math.max(0, cap - redis.call("ZCARD", B .. ":running"))
end
-- what a claim of limit jobs may take now, as both the rate window and the cap allow, with the rate
-- limit and its interval (see rateAllowed) and whether the cap bound it. CLAIM and PEEK both ask it
local function allowedNow(now, limit)
  local allowed, rateLimit, rateInterval = rateAllowed(now, limit)
  local free = capFree()
  if free ~= nil and free < allowed then return free, rateLimit, rateInterval, true end
  return allowed, rateLimit, rateInterval, false
end
-- a job of a capped queue stopped running (settled, reaped): its slot is free, and the queue's
-- consumers held back by the cap, in every process, hear it as for a new job (the one that claims
-- passes the marker on if jobs are left; one that finds the slot taken claims nothing and stops it)
local function slotFreed()
  if redis.call("HEXISTS", B .. ":meta", "concurrency") == 1 or groupCap() > 0 then
    groupChanged()
    markReady()
  end
end
local function place(id, now)
  local f = redis.call("HMGET", jobKey(id), "task", "rank", "seq", "visible", "group")
  placeAs(id, f[1], tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), now, f[5])
end
-- how many of the key's jobs run: the size of its running set, O(1) however many keys a claim
-- passes at their cap. Every way a job stops running takes it out (endLease, a settle's groupEnded),
-- a cap removed deletes the sets and a purge takes a deleted job out: a claim that read the members
-- to drop stale ones cost a SMEMBERS and a ZSCORE per running job of each key it passed (10,000 keys
-- at their cap: 123 ms per empty claim, the server blocked)
local function runningOf(g)
  return redis.call("SCARD", B .. ":grun:" .. g)
end
-- how many keys (B:groups) have a ready job of the tasks \`handles\` holds (nil: any task), counted
-- until more than \`over\`; \`skipFull\`: keys at their cap left out (a settle there adds the marker).
-- A key's set holds every task's jobs, so this reads them: a key's first cap jobs, at most \`budget\`
-- in all (a key at its cap one), the keys past that counted as if each had one. A count too high
-- costs what it cost before this looked at tasks (a nap at the retry floor, a claim for nothing),
-- never a job left behind; reading every key cost a capped claim, or an idle watch's look, a read
-- per job of thousands of keys of other tasks
local function keyedReady(handles, over, skipFull, budget)
  local cap = groupCap()
  local total = redis.call("ZCARD", B .. ":groups")
  local n, left, at = 0, budget, 0
  while at < total and n <= over do
    local keys = redis.call("ZRANGE", B .. ":groups", at, at + 99)
    if #keys == 0 then break end
    for _, g in ipairs(keys) do
      if left <= 0 then return n + total - at end
      at = at + 1
      if skipFull and runningOf(g) >= cap then
        left = left - 1
      else
        -- its first cap jobs: those a claim's walk could start (it looks no further, see groupedPick)
        for _, m in ipairs(redis.call("ZRANGE", B .. ":gq:" .. g, 0, math.min(left, cap) - 1)) do
          left = left - 1
          if handles == nil or handles[redis.call("HGET", jobKey(string.sub(m, 17)), "task")] then
            n = n + 1
            break
          end
        end
      end
      if n > over then return n end
    end
  end
  return n
end
-- how many ready jobs of these tasks (ARGV[from + 1 .. from + count]) a claim could take past the
-- queue's cap, counted until more than \`over\`: their ready sets', and under a per-key cap one per
-- key with a job of these tasks waiting, held back by the queue's cap or by its key's own, a cap
-- either way. Keyed jobs left out, a queue's cap holding back only keyed jobs was not reported capped;
-- keys at their cap left out, nor was a queue whose cap and keys' caps both held (memory says
-- capped); keys of other tasks counted, it was, and its consumer napped (memory and SQL do not)
local function readyOf(from, count, over)
  local n = 0
  for t = 1, count do n = n + redis.call("ZCARD", B .. ":ready:" .. ARGV[from + t]) end
  if n > over or groupCap() == 0 then return n end
  local handles = {}
  for t = 1, count do handles[ARGV[from + t]] = true end
  -- a claim's budget of keys (\`GROUP_VISITS\`): asked by every claim that fills the queue's cap
  return n + keyedReady(handles, over - n, false, ${GROUP_VISITS})
end
-- a job of a key stopped running
local function groupEnded(id)
  local g = redis.call("HGET", jobKey(id), "group")
  if g and g ~= "" then redis.call("SREM", B .. ":grun:" .. g, id) end
end
-- what a claim of a queue with a per-key cap takes (see \`byKeys\` in model.ts, which says it for the
-- memory store): the keys in turn from the one after meta groupCursor, wrapping, the ungrouped jobs
-- (B:ready of the tasks ARGV[from + 1 .. from + count]) taking the turn of the key "", each key its
-- best jobs of these tasks up to its free slots, one per key per round, at most limit. Each key is
-- one ZRANGE, whatever its backlog, a key at its cap one SCARD.
--
-- The walk visits at most a budget of keys (\`groupBudget\` in model.ts: limit, the queue's running
-- jobs, which bound its running keys, and visits, ARGV GROUP_VISITS), however many keys hold only jobs
-- of tasks this claim does not run: cut short there, the claim answers dueIn 0 (claim again at once)
-- and the next claim of these tasks goes on after the last key it visited, so that a round of many
-- keys takes several claims (see \`groupRounds\`). An empty cut claim stores where it stopped in
-- B:gstop (field: the tasks, as JSON; value: the cursor it read, the stretch of the round and the
-- key, with the queue's count of changes then and the time), one hash write that wakes nobody
-- (consumers wake on B:marker alone); the next claims go on with that round, from the cursor it read,
-- though other consumers' claims move the stored one, and the stop goes when the round ends, a claim
-- takes jobs, or STOP_AGE after its last claim. Per tasks: a key one consumer's walk passed gave
-- nothing to its tasks, not to another's. A job made ready in a key the round passed, or a slot freed
-- there, counts a change (groupChanged): the round's last claim then says claim again at once (dueIn
-- 0, the fifth answer) and the next starts a fresh round (the marker the change adds is no help: the
-- consumer's wait between the round's claims takes it).
-- → the picks ({key, member, score, text: the score as Redis gave it, group}) in order, whether a key
-- had more jobs than free slots, whether the walk was cut short, and a function that stores the walk's
-- end after a claim that took taken of the picks (a claim; a look that took nothing, to go on)
local function groupedPick(limit, from, count, visits, now)
  local cap = groupCap()
  local handles = {}
  local tasks = {}
  for t = 1, count do
    handles[ARGV[from + t]] = true
    tasks[t] = ARGV[from + t]
  end
  local lists = {}
  local full = false
  local function visit(g)
    local list = {}
    if g == "" then
      for t = 1, count do
        local key = B .. ":ready:" .. ARGV[from + t]
        local r = redis.call("ZRANGE", key, 0, limit - 1, "WITHSCORES")
        for i = 1, #r, 2 do list[#list + 1] = {key = key, member = r[i], score = tonumber(r[i + 1]), text = r[i + 1], group = ""} end
      end
      table.sort(list, function(a, b) return a.score < b.score or (a.score == b.score and a.member < b.member) end)
      while #list > limit do table.remove(list) end
    else
      local key = B .. ":gq:" .. g
      local free = math.min(limit, cap - runningOf(g))
      if free <= 0 then
        -- at its cap: its jobs wait (B:groups lists only keys with jobs)
        if free < limit then full = true end
        return
      end
      -- one more than it may take: whether its slots, not its jobs, ran out
      local r = redis.call("ZRANGE", key, 0, free, "WITHSCORES")
      for i = 1, #r, 2 do
        if #list >= free then
          if free < limit then full = true end
          break
        end
        local task = redis.call("HGET", jobKey(string.sub(r[i], 17)), "task")
        if handles[task] then list[#list + 1] = {key = key, member = r[i], score = tonumber(r[i + 1]), text = r[i + 1], group = g} end
      end
    end
    if #list > 0 then lists[#lists + 1] = list end
  end
  local budget = limit + redis.call("ZCARD", B .. ":running") + visits
  local seen = 0
  local cut = false
  -- the last key visited: its stretch of the round and the key
  local last
  -- the keys from min to max (ZRANGEBYLEX bounds), stretch index of the round; false once cut short
  local function walk(index, min, max)
    while #lists < limit do
      local keys = redis.call("ZRANGEBYLEX", B .. ":groups", min, max, "LIMIT", 0, 100)
      for _, g in ipairs(keys) do
        if #lists >= limit then return true end
        -- cut only with a key left to visit: a budget that runs out on the round's last key saw them all
        if seen >= budget then
          cut = true
          return false
        end
        visit(g)
        seen = seen + 1
        last = {p = index, k = g}
      end
      if #keys < 100 then return true end
      min = "(" .. keys[#keys]
    end
    return true
  end
  local field = cjson.encode(tasks)
  local stored = redis.call("HGET", B .. ":gstop", field)
  local stop = stored and cjson.decode(stored)
  local m = redis.call("HMGET", B .. ":meta", "groupCursor", "groupChanges")
  local cursor = m[1]
  -- the queue's changes when the round began (see groupChanged)
  local changes = tonumber(m[2] or "0")
  local version = changes
  if stop then version = stop.v or -1 end
  -- a stop goes on with the round it began, from the cursor that round read, though another
  -- consumer's claims moved the cursor since (dropped then, a busy consumer alternating two hot keys
  -- reset the round at each claim: a key past the budget was never reached)
  if stop then cursor = stop.c end
  -- the round's stretches, in order: {the ungrouped jobs} or {min, max} of the keys
  local round
  if not cursor then
    round = {{}, {"-", "+"}}
  elseif cursor == "" then
    round = {{"-", "+"}, {}}
  else
    round = {{"(" .. cursor, "+"}, {}, {"-", "[" .. cursor}}
  end
  local first = 1
  -- a stop at the ungrouped jobs' turn (k ""): the round goes on with the stretch after it. (Its
  -- turn was not remembered as the last visited: a budget spent on the keys before it and cut on the
  -- first key after it stored the key before it, and the next claim visited the ungrouped jobs again)
  if stop and stop.k == "" then first = stop.p + 1
  elseif stop then
    first = stop.p
    round[first] = {"(" .. stop.k, round[first][2]}
  end
  for index = first, #round do
    local stretch = round[index]
    if #lists >= limit then break end
    if stretch[1] == nil then
      visit("")
      last = {p = index, k = ""}
    elseif not walk(index, stretch[1], stretch[2]) then break end
  end
  local picked = {}
  local turn = 1
  while #picked < limit do
    local any = false
    for _, list in ipairs(lists) do
      if list[turn] and #picked < limit then
        picked[#picked + 1] = list[turn]
        any = true
      end
    end
    if not any then break end
    turn = turn + 1
  end
  local function settled(taken)
    if taken > 0 then
      -- the next claim's turn starts after the last key served, or, every job the walk found taken
      -- and the walk cut short, after the last key it visited (those before gave what they had)
      local after = picked[taken].group
      if cut and taken == #picked and last then after = last.k end
      redis.call("HSET", B .. ":meta", "groupCursor", after)
      if stored then redis.call("HDEL", B .. ":gstop", field) end
    elseif cut and last then
      -- a round begins: the stops of rounds whose claims ended STOP_AGE ago go (nothing else would
      -- drop a stopped consumer's, or a retired task list's, until the cap is removed)
      if not stored then
        local all = redis.call("HGETALL", B .. ":gstop")
        for i = 1, #all, 2 do
          if (cjson.decode(all[i + 1]).t or 0) < now - ${STOP_AGE} then redis.call("HDEL", B .. ":gstop", all[i]) end
        end
      end
      redis.call("HSET", B .. ":gstop", field, cjson.encode({c = cursor or false, p = last.p, k = last.k, v = version, t = now}))
      -- and all of them STOP_AGE after the last stop written: with no round beginning (a queue
      -- drained, its consumers' claims not cut), nothing dropped a stopped consumer's, and while one
      -- was there every enqueue and settle counted groupChanges
      redis.call("PEXPIRE", B .. ":gstop", ${STOP_AGE})
    elseif stored then
      redis.call("HDEL", B .. ":gstop", field)
    end
  end
  -- the end of a round of several claims during which the queue changed: a key walked before may have
  -- a job now, claim again at once (a fresh round: the stop is gone). As \`groupRounds\`' \`again\`
  local again = stop ~= nil and not cut and version ~= changes
  return picked, full, cut, settled, again
end
-- the jobs this script moved (promoted, reaped): a script over several queues (\`many\`) stops at a
-- budget of them, the server blocked for each
local moved = 0
-- paused, or held past now (JobQueue.holdQueue): no claim takes anything
local function closed(now)
  local m = redis.call("HMGET", B .. ":meta", "paused", "heldUntil")
  return m[1] == "1" or (m[2] and tonumber(m[2]) > now)
end
-- a held queue (not paused): ms until its hold ends, as text, for its consumers to claim again then; else ""
local function holdEndsIn(now)
  local m = redis.call("HMGET", B .. ":meta", "paused", "heldUntil")
  if m[1] == "1" or not m[2] or tonumber(m[2]) <= now then return "" end
  return tostring(tonumber(m[2]) - now)
end
-- delayed jobs whose time has come become ready
local function promote(now)
  local due = redis.call("ZRANGEBYSCORE", B .. ":delayed", "-inf", now, "LIMIT", 0, 1000)
  moved = moved + #due
  for _, id in ipairs(due) do
    redis.call("ZREM", B .. ":delayed", id)
    place(id, now)
  end
end
-- a priority no queued job has is no field: priorities are any numbers, one per job would be a field per job
local function unqueuedAt(priority, count)
  if redis.call("HINCRBY", B .. ":prio", priority, -count) <= 0 then redis.call("HDEL", B .. ":prio", priority) end
end
local function unqueue(id)
  local f = redis.call("HMGET", jobKey(id), "task", "seq", "priority", "group")
  redis.call("ZREM", B .. ":ready:" .. f[1], member(tonumber(f[2]), id))
  if f[4] and f[4] ~= "" then
    local key = B .. ":gq:" .. f[4]
    if redis.call("ZREM", key, member(tonumber(f[2]), id)) == 1 and redis.call("ZCARD", key) == 0 then
      redis.call("ZREM", B .. ":groups", f[4])
    end
  end
  redis.call("ZREM", B .. ":delayed", id)
  unqueuedAt(f[3], 1)
end
local function queuedAt(priority)
  redis.call("HINCRBY", B .. ":prio", priority, 1)
end
local function queued(id)
  queuedAt(redis.call("HGET", jobKey(id), "priority"))
end
-- a job that ended lets go of its dedup key; says whether it has dependents (read in the same HMGET:
-- a job without costs its settle no command more)
local function releaseDedup(id)
  local f = redis.call("HMGET", jobKey(id), "dedup", "dependents")
  local key = f[1]
  if key and key ~= "" and redis.call("HGET", B .. ":dedup", key) == id then redis.call("HDEL", B .. ":dedup", key) end
  return f[2] == "1"
end
-- job id ends in state at now, its dedup key let go: says whether it has dependents (whose walk,
-- dependentsEnded, is the caller's: see finish)
local function endJob(id, state, now)
  redis.call("HSET", jobKey(id), "state", state, "finished", now, "cancel", "0")
  redis.call("ZADD", B .. ":final:" .. state, now, id)
  return releaseDedup(id)
end
-- a job that will never expire (started, cancelled by its dependency, redriven): its deadline goes
local function unexpire(id)
  redis.call("ZREM", B .. ":expiring", id)
  redis.call("HDEL", jobKey(id), "expire")
end
${DEPENDENCIES}local function finish(id, state, now)
  if endJob(id, state, now) then dependentsEnded(id, state, now, cancelledForGood(jobKey(id))) end
end
-- a queued (or blocked) job past its expiry ends, cancelled at now (see model.ts's expiredAt)
local function expireJob(id, now)
  redis.call("ZREM", B .. ":expiring", id)
  if redis.call("ZREM", B .. ":blocked", id) == 0 then unqueue(id) end
  redis.call("HDEL", jobKey(id), "exit")
  finish(id, "cancelled", now)
end
-- queued jobs past their expiry (B:expiring) end: at most limit, soonest first. The claim's look and
-- the reap's; nothing to read where no job has one
local function expireDue(now, limit)
  local due = redis.call("ZRANGEBYSCORE", B .. ":expiring", "-inf", now, "LIMIT", 0, limit)
  moved = moved + #due
  for _, id in ipairs(due) do
    local state = redis.call("HGET", jobKey(id), "state")
    if state == "queued" or state == "blocked" then expireJob(id, now)
    else redis.call("ZREM", B .. ":expiring", id) end
  end
  return #due
end
local function endLease(id)
  local j = jobKey(id)
  local token = redis.call("HGET", j, "token")
  if token and token ~= "" then redis.call("HDEL", B .. ":tokens", token) end
  redis.call("ZREM", B .. ":running", id)
  redis.call("HSET", j, "token", "", "lease", "")
  groupEnded(id)
end
-- one command for many arguments (ZADD, HSET, HDEL, ZREM...), in chunks of 1000 (pairs stay whole):
-- Lua's unpack has a limit, and a large consumer settles or claims many jobs in one script
local function bulk(command, key, args)
  for i = 1, #args, 1000 do redis.call(command, key, unpack(args, i, math.min(i + 999, #args))) end
end
-- ends attempts whose tokens still hold their jobs: count settles of 5 arguments from args[from]
-- (token, kind final|retry|release, arg the final state, the retry's or snooze's delay ("" none), hasExit "1" if exit is
-- the failure or result to keep, exit) → 1, 2 (a retry or release ended cancelled instead: a cancel
-- asked for while it ran) or 0 (nothing written) for each. The lease ends and the
-- job ends (the busiest code of a drain) by one command per settle and a few for the whole batch.
local function settleMany(args, from, count, now)
  local out = {}
  if count == 0 then return out end
  local tokens = {}
  for i = 1, count do tokens[i] = args[from + (i - 1) * 5] end
  local ids = {}
  for i = 1, count, 1000 do
    local chunk = redis.call("HMGET", B .. ":tokens", unpack(tokens, i, math.min(i + 999, count)))
    for k = 1, #chunk do ids[i + k - 1] = chunk[k] end
  end
  local seen, ended, leases, finals = {}, {}, {}, {}
  for i = 1, count do
    local token, id = tokens[i], ids[i]
    if not id or seen[token] then
      out[i] = 0
    else
      seen[token] = true
      out[i] = 1
      local a = from + (i - 1) * 5
      local kind, arg, hasExit, exit = args[a + 1], args[a + 2], args[a + 3], args[a + 4]
      local j = jobKey(id)
      -- B:tokens holds only a job's current token: this one is the hash's own
      ended[#ended + 1] = token
      leases[#leases + 1] = id
      if kind == "final" then
        if hasExit == "1" then
          redis.call("HSET", j, "token", "", "lease", "", "exit", exit, "state", arg, "finished", now, "cancel", "0")
        else
          redis.call("HDEL", j, "exit")
          redis.call("HSET", j, "token", "", "lease", "", "state", arg, "finished", now, "cancel", "0")
        end
        local list = finals[arg]
        if not list then list = {}; finals[arg] = list end
        list[#list + 1] = now
        list[#list + 1] = id
        if releaseDedup(id) then dependentsEnded(id, arg, now, cancelledForGood(j)) end
      elseif redis.call("HGET", j, "cancel") == "1" then
        -- a cancel asked for while the attempt ran, which failed or was given back before its
        -- heartbeat heard of it: the job ends cancelled, not queued again (as the reaper ends it)
        out[i] = 2
        if kind ~= "retry" then redis.call("HINCRBY", j, "attempts", -1) end
        redis.call("HDEL", j, "exit")
        redis.call("HSET", j, "token", "", "lease", "")
        finish(id, "cancelled", now)
      else
        redis.call("HSET", j, "token", "", "lease", "")
        if hasExit == "1" then redis.call("HSET", j, "exit", exit) end
        if kind == "retry" then
          local visible = now + tonumber(arg)
          redis.call("HSET", j, "state", "queued", "visible", visible, "rank", rankOf(tonumber(redis.call("HGET", j, "priority")), visible))
        else
          -- given back: where it was in the queue (snoozed, arg its delay: visible after it, ranked
          -- from then), its attempt not counted
          redis.call("HINCRBY", j, "attempts", -1)
          if arg ~= "" then
            redis.call("HINCRBY", j, "snoozes", 1)
            local visible = now + tonumber(arg)
            redis.call("HSET", j, "state", "queued", "visible", visible, "rank", rankOf(tonumber(redis.call("HGET", j, "priority")), visible))
          else
            redis.call("HSET", j, "state", "queued")
          end
        end
        queued(id)
        place(id, now)
      end
    end
  end
  bulk("HDEL", B .. ":tokens", ended)
  bulk("ZREM", B .. ":running", leases)
  -- the keys' running sets, only in a queue with a per-key cap (their size is the keys' count: see
  -- runningOf; nothing else takes an ended job out)
  if #leases > 0 and groupCap() > 0 then for _, id in ipairs(leases) do groupEnded(id) end end
  for state, list in pairs(finals) do bulk("ZADD", B .. ":final:" .. state, list) end
  if #leases > 0 then slotFreed() end
  return out
end
`

/**
 * Adds a job whose fields are `a[o + 1]` to `a[o + JOB_FIELDS]`: id, task, payload, priority, dedup ("" none),
 * hasDedup, maxAttempts, timeout, delay, runAt ("" none), trace ("" none), retry ("" none), dedupQueued
 * ("1": its key is released when it starts), dedupFor (its throttle window in ms, "" none), dedupReplace
 * ("payload", "debounce" or "": see `NewJob.dedupReplace`), group ("" none), expireIn (ms, "" none). Returns
 * the job's id and 1, with the ms until it is visible; or, not created, the id of the job holding
 * its id or dedup key and 0 (with the ms until it is visible when a debounce moved it). `now`: the time (nil: read once it is needed). `madeQueue` is set when
 * it made the queue's `B:seq` (the queue's first job, or its first since a purge dropped it): the
 * caller then adds the queue to the list of queues, whatever its store instance remembers.
 *
 * `late`: it takes a `notAfter` too (a number, or nil for none) and, past it, creates nothing and
 * returns the id and -1 (a repeat's tick; see `NewJob.notAfter`). Only the scripts of ticks have it.
 */
/** How many fields of a job `addJob` takes (a single enqueue's ARGV after `now`). */
export const JOB_FIELDS = 17

const addJob = (late: boolean) => `
local madeQueue = false
-- a dedup hit on the job \`other\`: its payload (and, debounced, its run time) replaced by the new
-- job's if it asks and \`other\` waits, of its task
local function replaceHeld(a, o, other, now)
  local replace = a[o + 15]
  if replace ~= "payload" and replace ~= "debounce" then return other, 0 end
  local j = jobKey(other)
  local f = redis.call("HMGET", j, "state", "task", "priority")
  if (f[1] ~= "queued" and f[1] ~= "blocked") or f[2] ~= a[o + 2] then return other, 0 end
  if replace == "payload" then
    redis.call("HSET", j, "payload", a[o + 3])
    return other, 0
  end
  now = now or clock(ARGV[1])
  local visible
  if a[o + 10] ~= "" then visible = tonumber(a[o + 10]) else visible = now + tonumber(a[o + 9]) end
  if f[1] == "blocked" then
    -- placed by its release, from this time
    redis.call("HSET", j, "payload", a[o + 3], "visible", visible, "rank", rankOf(tonumber(f[3]), math.max(visible, now)))
    return other, 0
  end
  unqueue(other)
  redis.call("HSET", j, "payload", a[o + 3], "visible", visible, "rank", rankOf(tonumber(f[3]), math.max(visible, now)))
  queued(other)
  place(other, now)
  return other, 0, visible - now
end
local function addJob(a, o, now${late ? ", notAfter" : ", held"})
  local id = a[o + 1]
  if redis.call("EXISTS", jobKey(id)) == 1 then return id, 0 end
  local hasDedup = a[o + 6] == "1"
  if hasDedup then
    local other = redis.call("HGET", B .. ":dedup", a[o + 5])
    -- a holder past its expiry, met here as a claim would meet it: ended, its key free
    if other then
      local expire = redis.call("HMGET", jobKey(other), "state", "expire")
      if (expire[1] == "queued" or expire[1] == "blocked") and expire[2] then
        now = now or clock(ARGV[1])
        if tonumber(expire[2]) <= now then
          expireJob(other, now)
          other = nil
        end
      end
    end
    if other then return replaceHeld(a, o, other, now) end
    local windowed = redis.call("HGET", B .. ":window", a[o + 5])
    if windowed then
      now = now or clock(ARGV[1])
      local ends = tonumber(redis.call("HGET", jobKey(windowed), "dedupUntil") or "")
      if ends and ends > now then return replaceHeld(a, o, windowed, now) end
      redis.call("HDEL", B .. ":window", a[o + 5])
    end
  end
  now = now or clock(ARGV[1])
${late ? "  if notAfter and now > notAfter then return id, -1 end\n" : ""}  local visible
  if a[o + 10] ~= "" then visible = tonumber(a[o + 10]) else visible = now + tonumber(a[o + 9]) end
  local seq = redis.call("INCR", B .. ":seq")
  if seq == 1 then madeQueue = true end
  -- a runAt in the past is waited for from now (see model.rank)
  local rank = rankOf(tonumber(a[o + 4]), math.max(visible, now))
  -- one HSET; a field with nothing in it (dedup, started, finished, token, lease, trace, retry) is
  -- left out: every reader takes a missing field as empty
  local fields = {"id", id, "task", a[o + 2], "payload", a[o + 3], "priority", a[o + 4], "rank", rank, "seq", seq,
    "hasDedup", hasDedup and "1" or "0", "state", "queued", "attempts", 0, "max", a[o + 7], "timeout", a[o + 8],
    "created", now, "visible", visible, "cancel", "0"}
  if hasDedup then fields[#fields + 1] = "dedup"; fields[#fields + 1] = a[o + 5] end
  if a[o + 11] ~= nil and a[o + 11] ~= "" then fields[#fields + 1] = "trace"; fields[#fields + 1] = a[o + 11] end
  if a[o + 12] ~= nil and a[o + 12] ~= "" then fields[#fields + 1] = "retry"; fields[#fields + 1] = a[o + 12] end
  local window = hasDedup and a[o + 14] ~= nil and a[o + 14] ~= ""
  if hasDedup and a[o + 13] == "1" then fields[#fields + 1] = "dedupQueued"; fields[#fields + 1] = "1" end
  if window then fields[#fields + 1] = "dedupUntil"; fields[#fields + 1] = now + tonumber(a[o + 14]) end
  local group = a[o + 16]
  if group ~= nil and group ~= "" then fields[#fields + 1] = "group"; fields[#fields + 1] = group end
  local expire
  if a[o + 17] ~= nil and a[o + 17] ~= "" then
    expire = now + tonumber(a[o + 17])
    fields[#fields + 1] = "expire"; fields[#fields + 1] = expire
  end
  redis.call("HSET", jobKey(id), unpack(fields))
  if expire then redis.call("ZADD", B .. ":expiring", expire, id) end
  redis.call("ZADD", B .. ":all", seq, id)
  redis.call("SADD", B .. ":tasks", a[o + 2])
  if hasDedup then redis.call("HSET", B .. ":dedup", a[o + 5], id) end
  if window then redis.call("HSET", B .. ":window", a[o + 5], id) end
${late ? "" : "  -- a job with dependencies: placed by attach, if it may run now\n  if held then return id, 1 end\n"}  -- what it just wrote, not read back
  queuedAt(a[o + 4])
  placeAs(id, a[o + 2], rank, seq, visible, now, group)
  return id, 1, visible - now
end
`

/**
 * ARGV: now, then a job's fields (see `addJob`) → {id, created (1 or 0), ms until it is visible
 * (text; created only), "1" if it made the queue's seq (see `addJob`) else "0"}
 *
 * `indexed`: the script also owns the id index (KEYS[2] `{<prefix>}:ids`, job id → queue; the
 * argument after the job's fields the queue), and a created job's id is indexed in the same script. An id the index gives another
 * queue that holds it is not enqueued ({id, 0}); one whose queue does not hold it is an orphan (on
 * one Redis the index and the job are written together: no enqueue of it is on its way), which this
 * enqueue takes over: the entry is removed, and written again with the job if it is created.
 * Only on one Redis: on a Cluster the index and the other queue are in other slots, so the caller
 * writes the index first and looks at the other queue itself.
 *
 * `tick`: a repeat's tick, whose `notAfter` ("" none) is the last argument: past it, {id, -1} and
 * nothing stored.
 */
const enqueue = (indexed: boolean, tick: boolean) =>
  `${PRELUDE}${addJob(tick)}
local id = ARGV[2]
${
    indexed
      ? `local owner = redis.call("HGET", KEYS[2], id)
if owner and owner ~= ARGV[${JOB_FIELDS + 2}] then
  -- the other queue's keys' base, as redis.ts's queueBase makes it (its prefix from KEYS[2])
  local prefix = string.sub(KEYS[2], 2, -6)
  local base
  if string.find(owner, "}", 1, true) then
    base = "{" .. prefix .. "%" .. string.gsub(owner, "[%%}]", {["%"] = "%25", ["}"] = "%7D"}) .. "}"
  else
    base = "{" .. prefix .. ":" .. owner .. "}"
  end
  if redis.call("EXISTS", base .. ":job:" .. id) == 1 then return {id, 0} end
  redis.call("HDEL", KEYS[2], id)
end
`
      : ""
  }${
    tick
      ? `local found, created, due = addJob(ARGV, 1, nil, tonumber(ARGV[${indexed ? JOB_FIELDS + 3 : JOB_FIELDS + 2}]))
if created ~= 1 then return {found, created} end
`
      : `local found, created, due = addJob(ARGV, 1)
if created == 0 then return {found, 0, due and tostring(due) or ""} end
`
  }${indexed ? `redis.call("HSET", KEYS[2], id, ARGV[${JOB_FIELDS + 2}])
` : ""}return {id, 1, tostring(due), madeQueue and "1" or "0"}
`

/** A new job (its id names its queue, see redis.ts `namedQueue`), on one Redis or a Cluster. */
export const ENQUEUE = enqueue(false, false)

/** A repeat's tick on a Redis Cluster: the caller has indexed the id (another slot) before. */
export const ENQUEUE_TICK = enqueue(false, true)

/** A repeat's tick on one Redis: the id index too, in the same script (one round trip per enqueue). */
export const ENQUEUE_INDEXED = enqueue(true, true)

/**
 * New jobs of one queue, in order, at one time. ARGV: now, the jobs as a JSON array of arrays of
 * their fields (see `addJob`; ids fresh, named by their queue): one argument, not twelve a job,
 * which a batch of 10,000 made more than a JavaScript call can spread. → {ms until the soonest
 * created job is visible ("" for none), "1" if it made the queue's seq (see `addJob`) else "0",
 * then each job's id and created (1 or 0)}
 */
export const ENQUEUE_ALL: string = `${PRELUDE}${addJob(false)}
local jobs = cjson.decode(ARGV[2])
local now = clock(ARGV[1])
local out = {"", "0"}
local soonest
for _, job in ipairs(jobs) do
  local id, created, due = addJob(job, 0, now)
  out[#out + 1] = id
  out[#out + 1] = created
  -- a created job's time, or a debounced one's
  if due and (soonest == nil or due < soonest) then soonest = due end
end
if soonest then out[1] = tostring(soonest) end
if madeQueue then out[2] = "1" end
return out
`

/**
 * New jobs with dependencies (`NewJob.after`), in order, at one time: `ENQUEUE_ALL`'s jobs, each
 * array of fields followed by its queue, its dependencies' ids (JSON array), its `afterFailure`
 * ("run" or "") and its dependencies among this call's jobs (their places in it, from 0). ARGV:
 * now, the jobs as JSON → {"missing", id} when a dependency is in no queue (nothing stored), else
 * {the queues whose seq it made (see `addJob`), then each job's id, created (1 or 0) and ms until
 * it is visible ("" if it is not queued)}.
 *
 * The jobs may be of several queues: on one Redis one script stores a whole graph, atomically. On a
 * Cluster the store sends a queue's jobs alone, their dependencies all in that queue (see redis.ts).
 */
export const ENQUEUE_GRAPH: string = `${PRELUDE}${addJob(false)}
local jobs = cjson.decode(ARGV[2])
local now = clock(ARGV[1])
for _, job in ipairs(jobs) do
  for _, dep in ipairs(job[${JOB_FIELDS + 2}]) do
    if not baseOf(dep) then return {"missing", dep} end
  end
end
local home = B
local made, out, ids = {}, {{}}, {}
for i, job in ipairs(jobs) do
  local queue = job[${JOB_FIELDS + 1}]
  B = baseOfQueue(queue)
  madeQueue = false
  -- its dependencies: the stored ones, then the call's own (a dedup hit's: the holder), each once
  local after, seen = {}, {}
  for _, dep in ipairs(job[${JOB_FIELDS + 2}]) do
    if not seen[dep] then after[#after + 1] = dep; seen[dep] = true end
  end
  for _, k in ipairs(job[${JOB_FIELDS + 4}]) do
    local dep = ids[k + 1]
    if not seen[dep] then after[#after + 1] = dep; seen[dep] = true end
  end
  local id, created, due = addJob(job, 0, now, #after > 0)
  if madeQueue then out[1][#out[1] + 1] = queue end
  ids[i] = id
  if created == 1 and #after > 0 then due = attach(id, after, job[${JOB_FIELDS + 3}] == "run", now) end
  out[#out + 1] = id
  out[#out + 1] = created
  out[#out + 1] = due and tostring(due) or ""
end
B = home
return out
`

/**
 * The fields of a job the claim returns, in this order (HMGET: values only, a missing one nil): half
 * the reply of an HGETALL, which names each field, and no field names to decode in the consumer.
 */
export const CLAIMED_FIELDS = [
  "id",
  "task",
  "payload",
  "priority",
  "dedup",
  "hasDedup",
  "state",
  "attempts",
  "max",
  "timeout",
  "created",
  "visible",
  "started",
  "finished",
  "cancel",
  "exit",
  "progress",
  "trace",
  "retry",
  "rank",
  "dedupQueued",
  "group",
  "expire"
] as const

/**
 * ARGV: now, limit, lease, taskCount, tasks..., settleCount, settles (5 each, as SETTLE's)...,
 * tokenRandom, tokenFirst, tokenSuffix (the n-th job taken, from 0, gets the token tokenRandom ..
 * %012d of tokenFirst + n .. tokenSuffix), holder (the store's id if it holds the queue's delayed
 * marker, else ""; its `B:held` entry follows the soonest delayed job, or goes when none is left),
 * visits (`GROUP_VISITS`: a per-key cap's walk of keys, see `groupedPick`)
 * → {array of HMGET of CLAIMED_FIELDS, limitedFor, settled, dueIn, dueAt, capped}: first the settles (a busy
 * consumer's claim carries those of the jobs whose slots it fills; `settled` says 1, 2 or 0 for each),
 * then the claim: with a rate limit, at most what the queue's window allows (its oldest claims at
 * least `rateInterval` old, and the slots never used), recorded in the window; `limitedFor` (ms, as
 * text) is how long until the window frees when it held the claim back, else "0"; `dueIn` (ms, as
 * text) how long until the queue's soonest delayed job is visible, and `dueAt` when (the server's
 * ms), or "" if none is delayed (a paused queue: `dueIn` "", `dueAt` all the same); `dueIn` "0" when
 * a per-key cap's walk of keys stopped at its budget, or ended a round of several claims during which
 * the queue changed (see `groupedPick`), with fewer jobs than asked for. With a cap
 * (`concurrency`), at most its free slots; `capped` "1" when the cap held ready jobs back (it gave all
 * its slots and jobs of these tasks are left: no time frees a slot, a settle or reap wakes), else "0".
 */
export const CLAIM: string = `${PRELUDE}
-- a server over its maxmemory refuses a script's first write that may grow memory, and none after
-- it: the first write here was ZPOPMIN's (never refused), so a full server let claims through while
-- it refused their jobs' heartbeats and settles (the jobs ran, and ran again). A ZADD XX of a member
-- the marker never holds writes nothing, but is refused then, before anything is taken
redis.call("ZADD", B .. ":marker", "XX", 0, "full")
local now = clock(ARGV[1])
local taskCount = tonumber(ARGV[4])
local settleCount = tonumber(ARGV[5 + taskCount])
local settled = settleMany(ARGV, 6 + taskCount, settleCount, now)
local tokenAt = 5 + taskCount + settleCount * 5
-- the queue's soonest delayed job, which a holder's entry in B:held follows (gone when none is left)
local function soonest()
  local due = redis.call("ZRANGE", B .. ":delayed", 0, 0, "WITHSCORES")
  local holder = ARGV[tokenAt + 4]
  if holder ~= "" then
    if due[1] then redis.call("ZADD", B .. ":held", due[2], holder) else redis.call("ZREM", B .. ":held", holder) end
  end
  return due
end
-- paused: nothing taken, and no wake-up at the soonest delayed job's time (the resume wakes), but
-- that time all the same: the marker a store holds follows it (left out, it was read as NaN, and
-- the marker handed back "at NaN" was refused, lost)
-- the queue's expired jobs, met by the claim: ended, paused or not (a batch; the check below keeps
-- any a batch left from being handed out)
expireDue(now, 1000)
if closed(now) then return {{}, "0", settled, holdEndsIn(now), soonest()[2] or ""} end
promote(now)
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local wanted = limit
local rateLimit, rateInterval, capBound
limit, rateLimit, rateInterval, capBound = allowedNow(now, limit)
-- the jobs taken, best first: one task's (the usual consumer) by one ZPOPMIN; several tasks' by
-- comparing their heads, job by job
local taken = {}
local groupFull = false
-- a walk of the queue's keys cut short by its budget, or the end of a round the queue changed during
-- (see groupedPick): claim again at once
local groupCut = false
if groupCap() > 0 then
  if limit > 0 then
    local picked, settledPick, again
    picked, groupFull, groupCut, settledPick, again = groupedPick(limit, 4, taskCount, tonumber(ARGV[tokenAt + 5]), now)
    groupCut = groupCut or again
    for _, p in ipairs(picked) do
      local id = string.sub(p.member, 17)
      redis.call("ZREM", p.key, p.member)
      taken[#taken + 1] = id
      if p.group ~= "" then
        redis.call("SADD", B .. ":grun:" .. p.group, id)
        if redis.call("ZCARD", p.key) == 0 then redis.call("ZREM", B .. ":groups", p.group) end
      end
    end
    settledPick(#picked)
  end
elseif taskCount == 1 and limit > 0 then
  local popped = redis.call("ZPOPMIN", B .. ":ready:" .. ARGV[5], limit)
  for i = 1, #popped, 2 do taken[#taken + 1] = string.sub(popped[i], 17) end
elseif taskCount > 1 then
  for n = 1, limit do
    local bestKey, bestScore, bestMember
    for t = 1, taskCount do
      local key = B .. ":ready:" .. ARGV[4 + t]
      local head = redis.call("ZRANGE", key, 0, 0, "WITHSCORES")
      if head[1] then
        local score = tonumber(head[2])
        if bestKey == nil or score < bestScore or (score == bestScore and head[1] < bestMember) then
          bestKey, bestScore, bestMember = key, score, head[1]
        end
      end
    end
    if bestKey == nil then break end
    redis.call("ZREM", bestKey, bestMember)
    taken[#taken + 1] = string.sub(bestMember, 17)
  end
end
local out, leases, owners, byPriority = {}, {}, {}, {}
for _, id in ipairs(taken) do
  local j = jobKey(id)
  -- the n-th job handed out (from 0) has token number tokenFirst + n: the caller counts the reply's jobs
  local token = ARGV[tokenAt + 1] .. string.format("%012d", tonumber(ARGV[tokenAt + 2]) + #out) .. ARGV[tokenAt + 3]
  -- read once, then written once: the reply is what the hash holds after the write
  local job = redis.call("HMGET", j, ${CLAIMED_FIELDS.map((field) => `"${field}"`).join(", ")})
  local expire = job[${CLAIMED_FIELDS.indexOf("expire") + 1}]
  if expire and tonumber(expire) <= now then
    -- past its expiry, left by the batch above (a backlog): ended, never handed out (nor running in its key)
    groupEnded(id)
    expireJob(id, now)
  else
    if expire then
      -- started: it never expires (see model.ts's JobRow.expireAt)
      unexpire(id)
      job[${CLAIMED_FIELDS.indexOf("expire") + 1}] = false
    end
    local attempts = tonumber(job[${CLAIMED_FIELDS.indexOf("attempts") + 1}]) + 1
    redis.call("HSET", j, "attempts", attempts, "state", "running", "started", now, "token", token, "lease", now + lease)
    -- a "queued"-mode job's key is released as it starts (its retries do not take it back)
    if job[${CLAIMED_FIELDS.indexOf("dedupQueued") + 1}] == "1" then releaseDedup(id) end
    local priority = job[${CLAIMED_FIELDS.indexOf("priority") + 1}]
    byPriority[priority] = (byPriority[priority] or 0) + 1
    leases[#leases + 1] = now + lease
    leases[#leases + 1] = id
    owners[#owners + 1] = token
    owners[#owners + 1] = id
    job[${CLAIMED_FIELDS.indexOf("attempts") + 1}] = tostring(attempts)
    job[${CLAIMED_FIELDS.indexOf("state") + 1}] = "running"
    job[${CLAIMED_FIELDS.indexOf("started") + 1}] = tostring(now)
    out[#out + 1] = job
  end
end
for priority, count in pairs(byPriority) do unqueuedAt(priority, count) end
bulk("ZADD", B .. ":running", leases)
bulk("HSET", B .. ":tokens", owners)
local limitedFor = "0"
if rateLimit > 0 then
  for n = 1, #out do
    redis.call("ZADD", B .. ":rate", string.format("%.3f", now), string.format("%016d", redis.call("INCR", B .. ":rateseq")))
  end
  redis.call("ZREMRANGEBYRANK", B .. ":rate", 0, -rateLimit - 1)
  -- held back: the window gave all it had, fewer than asked for
  if #out == limit and limit < wanted and redis.call("ZCARD", B .. ":rate") >= rateLimit then
    local first = redis.call("ZRANGE", B .. ":rate", 0, 0, "WITHSCORES")
    local wait = tonumber(first[2]) + rateInterval - now
    if wait > 0 then limitedFor = tostring(wait) end
  end
end
-- jobs left: pass the wake-up on to another idle consumer (BullMQ does the same); under a full
-- window too, so that an idle consumer elsewhere learns when the window frees (else it slept to its
-- poll while this one was busy). The soonest delayed job's marker is not added again: a store that
-- took it for its idle consumers hands it back when it cannot claim at that time (re-adding it at
-- every claim made those stores pop it again)
if #out > 0 then markReady() end
local capped = "0"
if (capBound and #out == limit and readyOf(4, taskCount, 0) > 0) or (groupFull and #out < wanted) then capped = "1" end
local due = soonest()
local dueIn = due[1] and tostring(tonumber(due[2]) - now) or ""
if groupCut and #out < wanted then dueIn = "0" end
return {out, limitedFor, settled, dueIn, due[2] or "", capped}
`

/**
 * The first step of a claim of several queues (see `redis.ts`'s `allotments`): ARGV: now, limit,
 * taskCount, tasks..., visits (as CLAIM's) → {heads, dueIn, dueAt, limited}: heads, the score (−rank, as Redis keeps it)
 * and creation time of each of the best `limit` ready jobs of these tasks, best first, at most as
 * many as the queue's rate window and its cap allow now (as CLAIM counts them), none while it is paused: {score,
 * created, score, created, ...}; dueIn and dueAt, the queue's soonest delayed job as CLAIM gives it
 * (dueIn "" while it is paused); limited "1" if its rate window allows fewer than `limit` now (its
 * claim says how long it holds the claim back), or its cap holds ready jobs back (its claim says so,
 * `capped`), else "0". Promotes the due delayed jobs first, as
 * CLAIM would. A queue with no heads that is not limited has nothing for the claim to take, which
 * then skips it (a claim in turn of each of 10,000 queues, most of them empty, took seconds).
 */
const PEEK_BODY = `
local now = clock(ARGV[1])
local function soonest()
  local due = redis.call("ZRANGE", B .. ":delayed", 0, 0, "WITHSCORES")
  if not due[1] then return "", "" end
  return tostring(tonumber(due[2]) - now), due[2]
end
if closed(now) then
  local _, dueAt = soonest()
  return {{}, holdEndsIn(now), dueAt, "0"}
end
promote(now)
local wanted = tonumber(ARGV[2])
local limit, rateLimit, _, capBound = allowedNow(now, wanted)
local heads = {}
local groupFull = false
local groupCut = false
if limit > 0 and groupCap() > 0 then
  local picked, settledPick, again
  picked, groupFull, groupCut, settledPick, again = groupedPick(limit, 3, tonumber(ARGV[3]), tonumber(ARGV[4 + tonumber(ARGV[3])]), now)
  groupCut = groupCut or again
  -- a look that found nothing is the queue's claim (none follows): the round goes on from its stop
  if #picked == 0 then settledPick(0) end
  -- what the claim would take (its keys' turn), scored as they are
  for _, p in ipairs(picked) do heads[#heads + 1] = {p.member, p.text} end
elseif limit > 0 then
  for t = 1, tonumber(ARGV[3]) do
    local ready = redis.call("ZRANGE", B .. ":ready:" .. ARGV[3 + t], 0, limit - 1, "WITHSCORES")
    for i = 1, #ready, 2 do heads[#heads + 1] = {ready[i], ready[i + 1]} end
  end
end
table.sort(heads, function(a, b)
  local x, y = tonumber(a[2]), tonumber(b[2])
  return x < y or (x == y and a[1] < b[1])
end)
local out = {}
for i = 1, math.min(limit, #heads) do
  out[#out + 1] = heads[i][2]
  out[#out + 1] = redis.call("HGET", jobKey(string.sub(heads[i][1], 17)), "created")
end
local dueIn, dueAt = soonest()
-- cut short by its budget of keys, or a round the queue changed during ended: the next claim looks again at once
if groupCut and #out / 2 < wanted then dueIn = "0" end
local limited = "0"
-- out holds two values a job (a key cut short with fewer jobs than wanted was not limited once
-- half as many as wanted came back: its queue's claim, given that share, took it all and the claim
-- of several queues came back short and not capped)
if (rateLimit > 0 and limit < wanted) or (capBound and readyOf(3, tonumber(ARGV[3]), limit) > limit) or (groupFull and #out / 2 < wanted) then
  limited = "1"
end
return {out, dueIn, dueAt, limited}
`
export const PEEK: string = `${PRELUDE}${PEEK_BODY}`

/**
 * ARGV: now, lease, tokens... → {lost tokens, cancelled tokens}. Passes on a server over its
 * maxmemory, as a reap does: it grows nothing (a lease's time written over, a score moved), and
 * refused there (its first write was an HSET) while the reap's went through, it left a live
 * consumer's jobs to the reaper, which counted their attempt (the last: dead).
 */
export const HEARTBEAT: string = `${PRELUDE}
-- a write Redis never refuses (an HDEL of a field no token is): after it, a full server lets the
-- script's other writes through (it refuses only a script's first write that may grow memory)
redis.call("HDEL", B .. ":tokens", "")
local now = clock(ARGV[1])
local lease = tonumber(ARGV[2])
local lost, cancelled = {}, {}
for i = 3, #ARGV do
  local token = ARGV[i]
  local id = redis.call("HGET", B .. ":tokens", token)
  if not id then
    lost[#lost + 1] = token
  else
    local j = jobKey(id)
    redis.call("HSET", j, "lease", now + lease)
    redis.call("ZADD", B .. ":running", now + lease, id)
    if redis.call("HGET", j, "cancel") == "1" then cancelled[#cancelled + 1] = token end
  end
end
return {lost, cancelled}
`

/** ARGV: token, progress → 1 or 0 */
export const PROGRESS: string = `${PRELUDE}
local id = redis.call("HGET", B .. ":tokens", ARGV[1])
if not id then return 0 end
redis.call("HSET", jobKey(id), "progress", ARGV[2])
return 1
`

/**
 * ARGV: now, then settles of 5 each (see PRELUDE's `settleMany`) → 1, 2 or 0 for each: what a consumer's
 * settles queued together are written in one call
 */
export const SETTLE: string = `${PRELUDE}
local now = clock(ARGV[1])
return settleMany(ARGV, 2, math.floor((#ARGV - 1) / 5), now)
`

/**
 * ARGV: now, policies (JSON: name → delays), backoff... → how many were taken back. A job's delay
 * (see `Store.reap`): its own backoff by the formula of `Backoff.delay` (keep them in step), its
 * named policy's list, or `backoff`.
 */
/**
 * `tell`: the script also answers which jobs it took back (a consumer's lifecycle events): `{count,
 * {id, task, attempts, outcome, visible or -1, ...}}`, from what it reads anyway but the task.
 */
const reapBody = (tell: boolean) => `
local now = clock(ARGV[1])
local policies = cjson.decode(ARGV[2])
local backoff = {}
for i = 3, #ARGV do backoff[#backoff + 1] = tonumber(ARGV[i]) end
local MAX = 1e15
local function delayOf(j, attempts)
  local text = redis.call("HGET", j, "retry")
  local list = backoff
  if text and text ~= "" then
    local ok, retry = pcall(cjson.decode, text)
    if ok and type(retry) == "table" then
      if type(retry.policy) == "string" then
        if type(policies[retry.policy]) == "table" then list = policies[retry.policy] end
      elseif type(retry.fixed) == "number" and retry.fixed >= 0 then
        return math.min(math.floor(retry.fixed + 0.5), MAX)
      elseif type(retry.exponential) == "number" and type(retry.factor) == "number" then
        local delay = retry.exponential * retry.factor ^ (attempts - 1)
        if type(retry.max) == "number" and retry.max < delay then delay = retry.max end
        return math.min(math.floor(delay + 0.5), MAX)
      end
    end
  end
  if #list == 0 then return 0 end
  return tonumber(list[math.min(attempts, #list)]) or 0
end
local expired = redis.call("ZRANGEBYSCORE", B .. ":running", "-inf", now, "WITHSCORES", "LIMIT", 0, 1000)
moved = moved + #expired / 2
-- ended in the order of the jobs' creation, as every store ends them (a dependent of two ended here
-- names the one its walk meets first): the set's order of equal leases is their ids' (random)
local lapsed, seqOf = {}, {}
for i = 1, #expired, 2 do
  if tonumber(expired[i + 1]) < now then
    local id = expired[i]
    lapsed[#lapsed + 1] = id
    seqOf[id] = tonumber(redis.call("HGET", jobKey(id), "seq"))
  end
end
table.sort(lapsed, function(a, b) return seqOf[a] < seqOf[b] end)
local count = 0${tell ? `
local told = {}` : ""}
for _, id in ipairs(lapsed) do
  count = count + 1
  local j = jobKey(id)
  endLease(id)
  redis.call("HDEL", j, "exit")
  local f = redis.call("HMGET", j, "cancel", "attempts", "max", "priority"${tell ? `, "task"` : ""})
  local attempts = tonumber(f[2])
  if f[1] == "1" then
    finish(id, "cancelled", now)${tell ? `
    told[#told + 1] = id; told[#told + 1] = f[5]; told[#told + 1] = attempts; told[#told + 1] = "cancelled"; told[#told + 1] = -1` : ""}
  elseif attempts >= tonumber(f[3]) then
    finish(id, "dead", now)${tell ? `
    told[#told + 1] = id; told[#told + 1] = f[5]; told[#told + 1] = attempts; told[#told + 1] = "dead"; told[#told + 1] = -1` : ""}
  else
    local visible = now + delayOf(j, attempts)
    redis.call("HSET", j, "state", "queued", "visible", visible, "rank", rankOf(tonumber(f[4]), visible))
    queued(id)
    place(id, now)${tell ? `
    told[#told + 1] = id; told[#told + 1] = f[5]; told[#told + 1] = attempts; told[#told + 1] = "retried"; told[#told + 1] = visible` : ""}
  end
end
-- the queue's expired jobs, a batch: a paused or unconsumed queue's end too (not counted: no
-- consumer's job was taken back). After the leases, as every store: a dependent of a job reaped
-- dead and of one expiring names the reaped one
expireDue(now, 1000)
if count > 0 then slotFreed() end
return ${tell ? "{count, told}" : "count"}
`
export const REAP: string = `${PRELUDE}${reapBody(false)}`
/** `REAP` that also says which jobs it took back (see `reapBody`). */
export const REAP_TOLD: string = `${PRELUDE}${reapBody(true)}`

/** ARGV: now, id, cancel channel → "cancelled" | "requested" | "finished" | "missing" */
export const CANCEL: string = `${PRELUDE}
local id = ARGV[2]
local state = redis.call("HGET", jobKey(id), "state")
if not state then return "missing" end
if state == "queued" or state == "blocked" then
  if state == "queued" then unqueue(id) else redis.call("ZREM", B .. ":blocked", id) end
  redis.call("ZREM", B .. ":expiring", id)
  redis.call("HDEL", jobKey(id), "exit")
  finish(id, "cancelled", clock(ARGV[1]))
  return "cancelled"
elseif state == "running" then
  redis.call("HSET", jobKey(id), "cancel", "1")
  redis.call("PUBLISH", ARGV[3], id)
  return "requested"
end
return "finished"
`

/** ARGV: now, id → 1 or 0. A dead job, or an expired one (cancelled at or past its `expire`: see model.ts's `expiredAt`) */
export const REDRIVE: string = `${PRELUDE}
local id = ARGV[2]
local j = jobKey(id)
local s = redis.call("HMGET", j, "state", "expire", "finished")
local state = s[1]
local expired = state == "cancelled" and s[2] and s[3] and s[3] ~= "" and tonumber(s[3]) >= tonumber(s[2])
-- a job its dependency cancelled may be redriven too; none if what it still waits for cannot succeed
if state ~= "dead" and not expired and not (state == "cancelled" and redis.call("HGET", j, "failedDep")) then return 0 end
if not redrivable(id) then return 0 end
local f = redis.call("HMGET", j, "hasDedup", "dedup", "priority")
if f[1] == "1" and redis.call("HEXISTS", B .. ":dedup", f[2]) == 1 then return 0 end
local now = clock(ARGV[1])
redis.call("ZREM", B .. ":final:" .. state, id)
redis.call("HDEL", j, "failedDep", "failedDepState")
-- it runs again with no expiry (an expired one's, or one a stale entry would end again)
unexpire(id)
redis.call("HSET", j, "state", "queued", "attempts", 0, "visible", now, "finished", "", "cancel", "0",
  "rank", rankOf(tonumber(f[3]), now))
-- a new run from the start: its progress is absent (not empty, which would read as a value) until it reports
redis.call("HDEL", j, "started", "progress")
if f[1] == "1" then redis.call("HSET", B .. ":dedup", f[2], id) end
-- it waits for what it still needs, or runs
if unblocked(id) then
  queued(id)
  place(id, now)
else
  block(id)
end
return 1
`

/**
 * What `PURGE` and `RETAIN` share: `forget` deletes finished jobs of a final `state` (adding
 * their ids to `gone`; the blocked dependents of one not succeeded end first, see `forget`); `forgotten` removes them from the id index (`index`, "" on a Cluster) and,
 * when the queue has no job left, drops its keys (see `PURGE`'s `dropped`), answering 1 then.
 */
const FORGET = `
local function dropJob(state, id, gone)
  redis.call("ZREM", B .. ":final:" .. state, id)
  redis.call("ZREM", B .. ":all", id)
  redis.call("DEL", jobKey(id), B .. ":deps:" .. id, B .. ":waits:" .. id)
  gone[#gone + 1] = id
end
-- items: {state, id} pairs, each a finished job of that state to delete
local function forget(items, gone, now)
  -- a job's throttle window entry goes with it (read only where the queue has windows)
  local windows = #items > 0 and redis.call("EXISTS", B .. ":window") == 1
  local walks = {}
  for _, item in ipairs(items) do
    local state, id = item[1], item[2]
    if windows then
      local w = redis.call("HMGET", jobKey(id), "dedup", "dedupUntil")
      if w[2] and redis.call("HGET", B .. ":window", w[1]) == id then redis.call("HDEL", B .. ":window", w[1]) end
    end
    local f = redis.call("HMGET", jobKey(id), "group", "dependents", "seq")
    -- and its key's running set, should a missed settle have left it there
    if f[1] and f[1] ~= "" then redis.call("SREM", B .. ":grun:" .. f[1], id) end
    -- one that did not succeed first ends what still waits for it as its end did (a dependent
    -- redriven back to blocked since, or to wait for one it cancelled): nothing else ever would
    if f[2] == "1" and state ~= "succeeded" then walks[#walks + 1] = {tonumber(f[3]), state, id}
    else dropJob(state, id, gone) end
  end
  -- in the order of the jobs' creation, as every store deletes them (a dependent of two deleted
  -- here names the one its walk meets first), each walked before its edges go
  table.sort(walks, function(a, b) return a[1] < b[1] end)
  local walked = {}
  for _, walk in ipairs(walks) do
    -- doomed by its delete only if it could still succeed (what it waits for is not gone), and not
    -- walked by one deleted before it here
    dependentsEnded(walk[3], walk[2], now, not walked[walk[3]] and redrivable(walk[3]), walked)
    dropJob(walk[2], walk[3], gone)
  end
end
local function forgotten(gone, index, now)
  if index ~= "" and #gone > 0 then bulk("HDEL", index, gone) end
  if redis.call("ZCARD", B .. ":all") > 0 then return 0 end
  -- B:all holds every job until it is purged: none queued, delayed, running or finished
  for _, task in ipairs(redis.call("SMEMBERS", B .. ":tasks")) do redis.call("DEL", B .. ":ready:" .. task) end
  redis.call("DEL", B .. ":groups", B .. ":gstop")
  redis.call("DEL", B .. ":seq", B .. ":tasks", B .. ":marker", B .. ":held", B .. ":prio", B .. ":dedup", B .. ":window", B .. ":tokens",
    B .. ":running", B .. ":delayed", B .. ":expiring", B .. ":final:succeeded", B .. ":final:dead", B .. ":final:cancelled")
  local m = redis.call("HMGET", KEYS[1], "paused", "aging", "rateLimit", "retention", "concurrency", "heldUntil", "groupConcurrency")
  if not m[3] then redis.call("DEL", B .. ":rate", B .. ":rateseq") end
  -- a hold that lasts is a setting too: dropped, the queue's next job ran at once
  local held = tonumber(m[6] or "0") > now
  if m[1] ~= "1" and tonumber(m[2] or "0") == 0 and not m[3] and not m[4] and not m[5] and not held and not m[7] then
    redis.call("DEL", KEYS[1])
  end
  return 1
end
`

/** The most jobs of one final state a `PURGE` deletes (a script holds the server while it runs). */
export const PURGE_BATCH = 10_000

/**
 * ARGV: before, index, now, states... → {the ids deleted, at most `PURGE_BATCH` of each state (fewer than
 * `PURGE_BATCH` in all: every job of those states that finished before `before` is gone), dropped}.
 *
 * `dropped` 1: the queue had no job left in any state, and its keys are gone, `B:seq` with them
 * (its settings stay: a pause, an aging, a rate limit and its window, a retention, a cap, a hold), so that the caller takes it
 * out of the list of queues (another slot on a Cluster) and puts it back if an enqueue has made its
 * `B:seq` again meanwhile (see `redis.ts`'s `purge`). Without that, a queue per tenant kept its
 * keys and its place in the list for good, and every reap, purge and listing walked it.
 *
 * `index`: on one Redis the id index's key (`{<prefix>}:ids`), whose entries of the deleted ids go in
 * the same script (by a command after it, one that failed left them naming a queue without the job:
 * orphans, see `redis.ts`); "" on a Cluster (another slot: the caller removes them after).
 */
export const PURGE: string = `${PRELUDE}${FORGET}
local gone = {}
local now = clock(ARGV[3])
local items = {}
for i = 4, #ARGV do
  for _, id in ipairs(redis.call("ZRANGEBYSCORE", B .. ":final:" .. ARGV[i], "-inf", "(" .. ARGV[1], "LIMIT", 0, ${PURGE_BATCH})) do
    items[#items + 1] = {ARGV[i], id}
  end
end
forget(items, gone, now)
return {gone, forgotten(gone, ARGV[2], now)}
`

/**
 * ARGV: now, index, batch → {the ids deleted, dropped, more}: the queue's retention (its meta
 * hash's `retention`, JSON: see `model.ts`'s `Retention`) applied once. For each final state it
 * names, the jobs past it are the oldest of `B:final:<state>` (by end time): those that ended
 * before `now − age`, and those past the newest `count`; at most `batch` of them go in all (the
 * states in turn), as a purge deletes them (`index` and `dropped` as for `PURGE`). `more` 1: some
 * were left past it. A retention that is not JSON, or a value that is not a number of at least 0, limits
 * nothing (as `decodeRetention` reads it), and so does an age that is not finite or a count that is
 * not a whole number.
 */
export const RETAIN: string = `${PRELUDE}${FORGET}
local text = redis.call("HGET", KEYS[1], "retention")
if not text then return {{}, 0, 0} end
local ok, retention = pcall(cjson.decode, text)
if not ok or type(retention) ~= "table" then return {{}, 0, 0} end
local now = clock(ARGV[1])
local batch = tonumber(ARGV[3])
local gone = {}
local more = 0
for _, state in ipairs({"succeeded", "dead", "cancelled"}) do
  local keep = retention[state]
  if type(keep) == "table" then
    local key = B .. ":final:" .. state
    -- both are a prefix of the set in end-time order: the longer one goes
    local past = 0
    -- read as decodeRetention reads them (a finite age, a whole count): a count of 0.5 written by
    -- hand made a ZRANGE to a fraction, and the queue's script failed at every pass
    local age = type(keep.age) == "number" and keep.age < math.huge and keep.age or -1
    if age >= 0 then past = redis.call("ZCOUNT", key, "-inf", "(" .. string.format("%.17g", now - age)) end
    local count = type(keep.count) == "number" and keep.count == math.floor(keep.count) and keep.count or -1
    if count >= 0 then past = math.max(past, redis.call("ZCARD", key) - count) end
    -- at most batch in all, the queue's states together: one script's work is bounded as a reap's
    local take = math.min(past, batch - #gone)
    if past > take then more = 1 end
    if take > 0 then
      local items = {}
      for _, id in ipairs(redis.call("ZRANGE", key, 0, take - 1)) do items[#items + 1] = {state, id} end
      forget(items, gone, now)
    end
  end
end
if #gone == 0 then return {gone, 0, more} end
return {gone, forgotten(gone, ARGV[2], now), more}
`

/**
 * ARGV: paused ("" unchanged, "1", "0"), aging ("" unchanged), rate limit ("" unchanged, "0" none),
 * its interval, now, retention ("" unchanged, "0" none, else its JSON), cap on running jobs (""
 * unchanged, "0" none), hold (ms from now, "" unchanged, "0" none), hold at least (ms from now, ""
 * unchanged: the later of the hold before and now + this) → 1, or 0 for a new rate limit
 * or cap that wakes no one (nothing ready, or its window full: no claim could take anything)
 */
export const CONFIGURE: string = `${PRELUDE}
local now = clock(ARGV[5])
-- when the window frees under the limit in force (0: not full), to compare with the new limit's
local freedAt = windowFreesAt(now)
-- a setting at its default is no field (nor its window a key): the meta hash of a queue a purge
-- dropped, resumed or its aging or rate limit removed, goes, as it would at the purge (a queue out
-- of the list keeps no key that no purge visits)
local function setting(field, value)
  if value == "0" then redis.call("HDEL", KEYS[1], field) else redis.call("HSET", KEYS[1], field, value) end
end
if ARGV[1] ~= "" then setting("paused", ARGV[1]) end
if ARGV[2] ~= "" then setting("aging", ARGV[2]) end
if ARGV[6] ~= nil and ARGV[6] ~= "" then setting("retention", ARGV[6]) end
local cap = ARGV[7] or ""
if cap ~= "" then setting("concurrency", cap) end
local hold = ARGV[8] or ""
if hold ~= "" then setting("heldUntil", hold == "0" and "0" or tostring(now + tonumber(hold))) end
-- a snooze's hold: the later of the hold's end before and now + this (a short one does not cut a long one)
local atLeast = ARGV[9] or ""
if atLeast ~= "" then
  local ends = math.max(tonumber(redis.call("HGET", KEYS[1], "heldUntil") or "0"), now + tonumber(atLeast))
  if ends > now then setting("heldUntil", tostring(ends)) end
end
-- a per-key cap set on a queue without one: its grouped ready jobs move to their keys' sets, and its
-- grouped running jobs count in their keys' running sets (else a key's next job started beside them);
-- removed, the ready jobs go back to their tasks' sets and the running sets go (one script: the
-- claims never see half of them moved)
local groups = ARGV[10] or ""
if groups ~= "" then
  local before = groupCap()
  setting("groupConcurrency", groups)
  -- a cap raised frees slots in keys a round may have passed at their cap, as a settle does (see
  -- groupChanged: the marker below is taken by the wait between the round's claims)
  if tonumber(groups) > before then groupChanged() end
  local function runningKeys(each)
    for _, id in ipairs(redis.call("ZRANGE", B .. ":running", 0, -1)) do
      local g = redis.call("HGET", jobKey(id), "group")
      if g and g ~= "" then each(B .. ":grun:" .. g, id) end
    end
  end
  if before == 0 and groups ~= "0" then
    runningKeys(function(key, id) redis.call("SADD", key, id) end)
    for _, task in ipairs(redis.call("SMEMBERS", B .. ":tasks")) do
      local key = B .. ":ready:" .. task
      local all = redis.call("ZRANGE", key, 0, -1, "WITHSCORES")
      for i = 1, #all, 2 do
        local g = redis.call("HGET", jobKey(string.sub(all[i], 17)), "group")
        if g and g ~= "" then
          redis.call("ZREM", key, all[i])
          redis.call("ZADD", B .. ":gq:" .. g, all[i + 1], all[i])
          redis.call("ZADD", B .. ":groups", 0, g)
        end
      end
    end
  elseif before > 0 and groups == "0" then
    for _, g in ipairs(redis.call("ZRANGE", B .. ":groups", 0, -1)) do
      local key = B .. ":gq:" .. g
      local all = redis.call("ZRANGE", key, 0, -1, "WITHSCORES")
      for i = 1, #all, 2 do
        redis.call("ZADD", B .. ":ready:" .. redis.call("HGET", jobKey(string.sub(all[i], 17)), "task"), all[i + 1], all[i])
      end
      redis.call("DEL", key)
    end
    -- no stop left: the count of changes during rounds goes with them
    redis.call("DEL", B .. ":groups", B .. ":gstop")
    redis.call("HDEL", KEYS[1], "groupChanges")
    runningKeys(function(key) redis.call("DEL", key) end)
    -- the keys' turn stays for a cap set again (as the other stores keep it), but not in the meta
    -- hash of a queue a purge dropped: no purge would visit it again
    if redis.call("EXISTS", B .. ":all") == 0 then redis.call("HDEL", KEYS[1], "groupCursor") end
  end
end
-- a rate limit ("0": none): the latest claims stay counted, at most the new limit of them
if ARGV[3] == "0" then
  redis.call("HDEL", KEYS[1], "rateLimit", "rateInterval")
  redis.call("DEL", B .. ":rate", B .. ":rateseq")
elseif ARGV[3] ~= nil and ARGV[3] ~= "" then
  redis.call("HSET", KEYS[1], "rateLimit", ARGV[3], "rateInterval", ARGV[4])
  redis.call("ZREMRANGEBYRANK", B .. ":rate", 0, -tonumber(ARGV[3]) - 1)
end
if ARGV[1] == "0" or hold ~= "" then
  -- resumed, or a hold set or lifted: its consumers claim (a held one learns the hold's end). No job (a queue never used, or dropped): no one to wake
  if redis.call("EXISTS", B .. ":all") == 1 then redis.call("ZADD", B .. ":marker", 0, "0") end
elseif ARGV[3] ~= "" then
  -- a new limit: the queue's consumers held back by the window, in every process, claim again (the
  -- claim decides what the limit allows), woken as for a new job; one claims, and passes it on if
  -- it took some. A limit re-set or lowered under a full window wakes no one; one under which the
  -- window is still full but frees sooner (a shorter interval) wakes them too: they waited for the
  -- old window's end, and the one that claims learns the new one (at its end it claims, and passes
  -- the marker on if jobs are left)
  local freesAt = windowFreesAt(now)
  if (freesAt > 0 and (freedAt == 0 or freesAt >= freedAt)) or not markReady() then return 0 end
elseif cap ~= "" or groups ~= "" then
  -- a new cap: the consumers it held back, in every process, claim again (the claim decides what it allows)
  if not markReady() then return 0 end
end
return 1
`

/**
 * ARGV: now → {paused, waiting, delayed, running, succeeded, dead, cancelled, prio HGETALL,
 * {rateLimit, rateInterval, claims in the window} (as text; rateLimit "0": none), aging (text),
 * retention (JSON text, "" for none), concurrency (text, "0": no cap), heldUntil (text; "0": not held)}
 */
export const COUNTS: string = `${PRELUDE}
local now = clock(ARGV[1])
-- its hold's end (server ms, text) while it is held, else "0"
local function held()
  local at = tonumber(redis.call("HGET", KEYS[1], "heldUntil") or "0")
  return at > now and tostring(at) or "0"
end
local function rate()
  local limit = redis.call("HGET", KEYS[1], "rateLimit")
  if not limit then return {"0", "0", "0"} end
  local interval = redis.call("HGET", KEYS[1], "rateInterval")
  return {limit, interval, tostring(redis.call("ZCOUNT", B .. ":rate", "(" .. string.format("%.3f", now - tonumber(interval)), "+inf"))}
end
local waiting = redis.call("ZCOUNT", B .. ":delayed", "-inf", now)
for _, task in ipairs(redis.call("SMEMBERS", B .. ":tasks")) do
  waiting = waiting + redis.call("ZCARD", B .. ":ready:" .. task)
end
for _, g in ipairs(redis.call("ZRANGE", B .. ":groups", 0, -1)) do waiting = waiting + redis.call("ZCARD", B .. ":gq:" .. g) end
return {
  redis.call("HGET", KEYS[1], "paused") == "1" and 1 or 0,
  waiting,
  redis.call("ZCARD", B .. ":delayed") - redis.call("ZCOUNT", B .. ":delayed", "-inf", now),
  redis.call("ZCARD", B .. ":running"),
  redis.call("ZCARD", B .. ":final:succeeded"),
  redis.call("ZCARD", B .. ":final:dead"),
  redis.call("ZCARD", B .. ":final:cancelled"),
  redis.call("HGETALL", B .. ":prio"),
  rate(),
  redis.call("HGET", KEYS[1], "aging") or "0",
  redis.call("HGET", KEYS[1], "retention") or "",
  redis.call("HGET", KEYS[1], "concurrency") or "0",
  held(),
  redis.call("HGET", KEYS[1], "groupConcurrency") or "0",
  redis.call("ZCARD", B .. ":blocked")
}
`

/**
 * ARGV: now, since, limit → {now, {visible, started, finished, ...}}: the times of the jobs that
 * succeeded or went dead in [since, now), the newest `limit` of each state (read-only: the final
 * sets are already kept by the end time).
 */
export const LATENCIES: string = `${PRELUDE}
local now = clock(ARGV[1])
local limit = tonumber(ARGV[3])
local out = {}
for _, state in ipairs({"succeeded", "dead"}) do
  local ids = redis.call("ZREVRANGEBYSCORE", B .. ":final:" .. state, "(" .. now, ARGV[2], "LIMIT", 0, limit)
  for _, id in ipairs(ids) do
    local f = redis.call("HMGET", jobKey(id), "visible", "started", "finished")
    if f[2] and f[2] ~= "" then
      out[#out + 1] = f[1]
      out[#out + 1] = f[2]
      out[#out + 1] = f[3]
    end
  end
end
return {now, out}
`

/**
 * Whether a job of `state` (its `visible`, `created`, `expire` and `finished` fields as text) is
 * listed: of the wanted states (`any`: every one); queued, of the half `waiting` asks for ("" both;
 * see `ListFilter.waiting`), a job visible at or before its creation never delayed (as the SQL
 * stores say it); cancelled, with `expired` ("1"), one that expired (see model.ts's `expiredAt`).
 * Uses the script's `wanted`, `any`, `waiting`, `expired` and `now`.
 */
const LISTED = `
local function listed(state, visible, created, expire, finished)
  if not (any or wanted[state]) then return false end
  if state == "cancelled" and expired == "1" then
    -- a field the job lacks is false (HMGET), not nil
    if not expire or expire == "" or not finished or finished == "" then return false end
    return tonumber(finished) >= tonumber(expire)
  end
  if waiting == "" or state ~= "queued" then return true end
  visible = tonumber(visible)
  if waiting == "delayed" then return visible > now and visible > tonumber(created) end
  return visible <= now
end
`

/**
 * ARGV: limit, budget, now, waiting ("", or of the queued jobs only the "ready" or the "delayed"
 * ones, see `ListFilter.waiting`), expired ("1": of the cancelled jobs only the expired ones, see
 * `ListFilter.expired`; "" all), cursor ("" to start, or the one the call before returned),
 * states... (none for every state) → {rows: HGETALL of each, oldest first; the next cursor, "" when
 * done; candidates: seq and id of each, best first, to read by `LIST_JOBS` when done}. Looks at no
 * more than `budget` jobs: a script runs alone on its server, and one that walked a queue of
 * 100,000 queued jobs for its dead ones (the dashboard's every sample) held the whole server
 * 0.5-1 s, and past 5 s its other clients were answered BUSY.
 *
 * Two walks. By `B:all` (every state; or states whose sets are big and likely dense among the
 * oldest, see below), oldest first: the rows as it finds them, stopping at `limit`; cursor
 * `a<seq>`. By the sets that hold the wanted states (`B:ready:<task>` and `B:delayed` for queued,
 * the delayed ones only those due (ready) or not (delayed); `B:running`; `B:final:<state>`), in
 * their own order: none is by seq, so every member is looked at, and the oldest `limit` by seq are
 * kept (candidates); cursor `s<score>:<key length>:<key><member>` (the last looked at; score ""
 * for the start of that set). A first call that walks them all returns the rows itself (one script
 * for the 10 running jobs of a queue of 100,000 queued ones, which the walk by `B:all` looked at in
 * 100 scripts). The sets are walked unless they hold more than `budget` jobs and the walk by
 * `B:all` would likely meet `limit` of them sooner (spread evenly, after `limit * all / size`
 * jobs: the dashboard's 50 queued of a queue of 100,000 queued ones), but always for expired
 * ones: a set's size does not say how many of the cancelled jobs expired (none, often), and the
 * walk by `B:all` then looked at every job of the queue.
 */
export const LIST: string = `${PRELUDE}
local limit = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local now = clock(ARGV[3])
local waiting = ARGV[4]
local expired = ARGV[5]
local cursor = ARGV[6]
local wanted, states = {}, {}
-- each state once: a cursor names its set by key, and a set walked twice sent the second walk's
-- cursor back into the first (a list of ["running", "running"] past LIST_BUDGET never ended)
for i = 7, #ARGV do
  if not wanted[ARGV[i]] then states[#states + 1] = ARGV[i] end
  wanted[ARGV[i]] = true
end
local any = #states == 0
${LISTED}
local function walkAll(after)
  local out = {}
  local ids = redis.call("ZRANGEBYSCORE", B .. ":all", after, "+inf", "WITHSCORES", "LIMIT", 0, budget)
  local last = ""
  for i = 1, #ids, 2 do
    local id = ids[i]
    last = "a" .. ids[i + 1]
    local f = redis.call("HMGET", jobKey(id), "state", "visible", "created", "expire", "finished")
    if f[1] and listed(f[1], f[2], f[3], f[4], f[5]) then out[#out + 1] = redis.call("HGETALL", jobKey(id)) end
    if #out >= limit then break end
  end
  if #ids < 2 * budget and #out < limit then last = "" end
  return {out, last, {}}
end
-- the sets holding the wanted states, in an order that is the same at every call: key, above (only
-- scores past it), upTo (only scores up to it), ready (members are <seq, 16 digits><id>)
local function sourcesOf()
  local sources = {}
  for _, state in ipairs(states) do
    if state == "queued" then
      if waiting ~= "delayed" then
        local tasks = redis.call("SMEMBERS", B .. ":tasks")
        table.sort(tasks)
        for _, task in ipairs(tasks) do sources[#sources + 1] = {key = B .. ":ready:" .. task, ready = true} end
        for _, g in ipairs(redis.call("ZRANGE", B .. ":groups", 0, -1)) do sources[#sources + 1] = {key = B .. ":gq:" .. g, ready = true} end
      end
      -- a delayed job due and not yet promoted is ready
      sources[#sources + 1] = {key = B .. ":delayed", above = waiting == "delayed" and now or nil, upTo = waiting == "ready" and now or nil}
    elseif state == "running" then
      sources[#sources + 1] = {key = B .. ":running"}
    elseif state == "blocked" then
      sources[#sources + 1] = {key = B .. ":blocked"}
    else
      sources[#sources + 1] = {key = B .. ":final:" .. state}
    end
  end
  return sources
end
local function sizeOf(s)
  if s.above then return redis.call("ZCARD", s.key) - redis.call("ZCOUNT", s.key, "-inf", s.above) end
  if s.upTo then return redis.call("ZCOUNT", s.key, "-inf", s.upTo) end
  return redis.call("ZCARD", s.key)
end
-- a before b as Redis orders members (bytes; Lua's < follows the server's locale)
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- the rank of the first member after (score, member) in key: the members of a lower score, then
-- those of that score up to member (equal scores sort by member), found by halving. Whether member
-- is still there or not (it may have left its state since)
local function rankAfter(key, score, member)
  local lo = redis.call("ZCOUNT", key, "-inf", "(" .. score)
  local hi = redis.call("ZCOUNT", key, "-inf", score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(member, redis.call("ZRANGE", key, mid, mid)[1]) then hi = mid else lo = mid + 1 end
  end
  return lo
end
-- from sources[from] (at the rank after score and member, or at its start), at most budget members:
-- the candidates found (the best limit by seq), and the cursor where to go on ("" done)
local function walkSources(sources, from, score, member)
  local found = {}
  local looked = 0
  local start
  if score then start = rankAfter(sources[from].key, score, member) end
  for i = from, #sources do
    local s = sources[i]
    if looked >= budget then return found, "s:" .. #s.key .. ":" .. s.key end
    if not start then start = s.above and redis.call("ZCOUNT", s.key, "-inf", s.above) or 0 end
    local page = redis.call("ZRANGE", s.key, start, start + budget - looked - 1, "WITHSCORES")
    local ended = #page < 2 * (budget - looked)
    -- an empty set counts as one looked at: a queue of many tasks has a ready set per task
    if #page == 0 then looked = looked + 1 end
    local lastScore, lastMember
    for k = 1, #page, 2 do
      local m, sc = page[k], page[k + 1]
      if s.upTo and tonumber(sc) > s.upTo then
        ended = true
        break
      end
      looked = looked + 1
      lastScore, lastMember = sc, m
      if s.ready then
        found[#found + 1] = {tonumber(string.sub(m, 1, 16)), string.sub(m, 17)}
      else
        local f = redis.call("HMGET", jobKey(m), "seq", "state", "visible", "created", "expire", "finished")
        if f[1] and listed(f[2], f[3], f[4], f[5], f[6]) then found[#found + 1] = {tonumber(f[1]), m} end
      end
    end
    if not ended then return found, "s" .. lastScore .. ":" .. #s.key .. ":" .. s.key .. lastMember end
    start = nil
  end
  return found, ""
end
local function best(found)
  table.sort(found, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i = 1, math.min(limit, #found) do
    out[#out + 1] = found[i][1]
    out[#out + 1] = found[i][2]
  end
  return out
end
if cursor == "" then
  if any then return walkAll("-inf") end
  local sources = sourcesOf()
  local size = 0
  for _, s in ipairs(sources) do size = size + sizeOf(s) end
  if size > budget and expired ~= "1" and limit * redis.call("ZCARD", B .. ":all") < size * size then return walkAll("-inf") end
  local found, nextCursor = walkSources(sources, 1)
  if nextCursor ~= "" then return {{}, nextCursor, best(found)} end
  local chosen = best(found)
  local rows = {}
  for i = 2, #chosen, 2 do rows[#rows + 1] = redis.call("HGETALL", jobKey(chosen[i])) end
  return {rows, "", {}}
end
if string.sub(cursor, 1, 1) == "a" then return walkAll("(" .. string.sub(cursor, 2)) end
local score, length, rest = string.match(cursor, "^s([^:]*):(%d+):(.*)$")
local key = string.sub(rest, 1, tonumber(length))
local sources = sourcesOf()
for i, s in ipairs(sources) do
  if s.key == key then
    local found, nextCursor
    if score == "" then
      found, nextCursor = walkSources(sources, i)
    else
      found, nextCursor = walkSources(sources, i, score, string.sub(rest, tonumber(length) + 1))
    end
    return {{}, nextCursor, best(found)}
  end
end
-- its set is no longer one of them (a purge dropped the queue meanwhile)
return {{}, "", {}}
`

/**
 * ARGV: now, waiting, expired (as `LIST`'s), count, ids (count of them), states... → HGETALL of each
 * of the ids still listed (see `LISTED`), in their order: the candidates of a `LIST` that walked sets.
 */
export const LIST_JOBS: string = `${PRELUDE}
local now = clock(ARGV[1])
local waiting = ARGV[2]
local expired = ARGV[3]
local count = tonumber(ARGV[4])
local wanted = {}
for i = 5 + count, #ARGV do wanted[ARGV[i]] = true end
local any = #ARGV < 5 + count
${LISTED}
local out = {}
for i = 5, 4 + count do
  local f = redis.call("HMGET", jobKey(ARGV[i]), "state", "visible", "created", "expire", "finished")
  if f[1] and listed(f[1], f[2], f[3], f[4], f[5]) then out[#out + 1] = redis.call("HGETALL", jobKey(ARGV[i])) end
end
return out
`

/**
 * Puts a wake-up marker back (ARGV: its score, its member, holder) unless the queue has a sooner
 * one, or has no job (a purge may have dropped it since the marker was taken: a marker written then
 * was a key of a queue out of the list, left for good); a holder (a store's id, or "") that hands
 * back its delayed marker leaves `B:held`.
 */
export const MARK_DUE: string = `${PRELUDE}
if redis.call("EXISTS", B .. ":all") == 1 then markDue(ARGV[1], ARGV[2]) end
if ARGV[3] ~= "" then redis.call("ZREM", B .. ":held", ARGV[3]) end
return 1
`

/**
 * ARGV: now, grace, any ("1": jobs of any task count; "0": only of the tasks that follow), tasks...
 * → 1 if such jobs are ready and no "0" marker says so, else 0. Run by an idle store's
 * watch now and then: a marker popped by a store that was then killed (kill -9, no finalizer) is
 * gone, and its jobs would wait for the others' poll. Ready jobs with no marker: the caller wakes
 * its own idle consumers (a marker put back goes to the store blocked first, whose consumers may
 * handle other tasks, claim nothing and drop it, again at every look). The soonest delayed job gets
 * "1" unless a store answers for it, or a sooner one (`B:held`), within `grace` ms of that time (a
 * live holder claims then, which moves its entry on).
 */
export const ORPHANS: string = `${PRELUDE}
local now = clock(ARGV[1])
redis.call("ZREMRANGEBYSCORE", B .. ":held", "-inf", now - tonumber(ARGV[2]))
-- a paused or held queue's claims take nothing (its resume adds the marker; its hold's end is
-- heard at the consumers' poll)
if closed(now) then return 0 end
local ready = 0
-- jobs held back by a full window are not orphans: their consumers claim when it frees, or when
-- the limit changes (its marker); looked at as orphans, they woke them at every look to claim nothing
-- nor are those a full cap holds back: a settle or reap that frees a slot adds the marker
if not redis.call("ZSCORE", B .. ":marker", "0") and not windowFull(now) and capFree() ~= 0 then
  -- only the tasks the looking store's idle consumers handle: ready jobs of others (another
  -- process's consumers') woke them at every look to claim nothing
  local tasks = {}
  local handles
  if ARGV[3] == "1" then tasks = redis.call("SMEMBERS", B .. ":tasks")
  else
    handles = {}
    for i = 4, #ARGV do
      tasks[#tasks + 1] = ARGV[i]
      handles[ARGV[i]] = true
    end
  end
  for _, task in ipairs(tasks) do
    if redis.call("ZCARD", B .. ":ready:" .. task) > 0 then
      ready = 1
      break
    end
  end
  -- keyed jobs: of those tasks too, in keys with a free slot (any key with jobs woke the looking
  -- store's idle consumers every 5 s to claim nothing beside keys of other tasks or at their cap).
  -- A look is every 5 s a store, not every claim: it reads up to ${ORPHAN_LOOKS} jobs (a look's call beside
  -- 2,000 keys of other tasks: 1.5-1.8 ms, 0.7-1 ms beside none; 4-5 ms reading 1,000; load 6), as a
  -- wake-up for nothing costs the consumers a round of claims
  if ready == 0 and groupCap() > 0 and keyedReady(handles, 0, true, ${ORPHAN_LOOKS}) > 0 then ready = 1 end
end
local due = redis.call("ZRANGE", B .. ":delayed", 0, 0, "WITHSCORES")
if not due[1] or redis.call("ZSCORE", B .. ":marker", "1") then return ready end
local held = redis.call("ZRANGE", B .. ":held", 0, 0, "WITHSCORES")
if held[1] and tonumber(held[2]) <= tonumber(due[2]) then return ready end
markDue(due[2])
return ready
`

/** The jobs a script over several queues (`many`) moves before it stops (its last queue's may pass it). */
export const MANY_BUDGET = 1000

/**
 * A queue's script run over several queues in one call, on one server only (a Cluster's queues are
 * in different slots, and a script touches one): KEYS are each queue's meta hash and guard, as
 * `run` passes them for one queue (numkeys twice the queues), ARGV the one script's → its answers,
 * one per queue, in the order of KEYS. `B`, which every helper of the prelude reads, is set to each
 * queue's base in turn. A script per queue cost a round trip and, in the store, a fiber and a timer
 * each: a claim's look at 10,000 queues took 1-2 s, a reap as long (docs/operations.md).
 *
 * A queue whose part fails (a key of the wrong type, a job hash missing fields) answers the text
 * `failed: <why>`, and the others go on: a failure failed the whole script, and one such queue
 * kept every queue of its hundred from being reaped, for ever. What it wrote before stays, as in
 * its own script.
 *
 * It stops after the queue that brings the jobs it moved (promoted, reaped) to `MANY_BUDGET`, its
 * answers then fewer than its queues: the caller sends the rest again (`redis.ts`'s `runMany`).
 * Each queue's part moves up to 1,000 jobs, as its own script does: 100 queues' reaps after a fleet
 * died took back up to 100,000 jobs in one script, the server blocked for seconds (20,000: 1.2 s),
 * every other client's command waiting, heartbeats too.
 */
const many = (body: string) => `${PRELUDE}
local function one()
${body}
end
local out = {}
for i = 1, #KEYS, 2 do
  B = string.sub(KEYS[i], 1, -6)
  local ok, answer = pcall(one)
  if not ok then
    -- a redis.call error is raised as {err = ...}
    if type(answer) == "table" and answer.err then answer = answer.err end
    answer = "failed: " .. tostring(answer)
  end
  out[#out + 1] = answer
  if moved >= ${MANY_BUDGET} then break end
end
return out
`

/** `PEEK` of several queues (see `many`). */
export const PEEK_MANY: string = many(PEEK_BODY)

/** `REAP` of several queues (see `many`). */
export const REAP_MANY: string = many(reapBody(false))

/** `REAP_TOLD` of several queues (see `many`). */
export const REAP_TOLD_MANY: string = many(reapBody(true))

/**
 * The server's TIME, by a script: on a Cluster, routed by its key (the list of queues') to that
 * key's node, always the same, where TIME alone (no key) goes to each node in turn.
 */
export const TIME = `return redis.call("TIME")`
