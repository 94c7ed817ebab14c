/**
 * The Postgres final settle's statement alone, before and after schema version 7 (which records the
 * settling transaction's id in `settled_xid`, indexed by `wp_job_settled` for the dashboard's
 * latencies): two schemas made by the store's migrations, one only up to version 6 (no column, no index), the
 * same running jobs in each, settled in batches of `batch` tokens (as a consumer's settles go) by
 * the statement of each version, the two alternating round by round (A B B A ...). Prints the µs per
 * settled job of each round and the ratio new/old of each pair, then their medians.
 *
 *   node bench/durable/pgsettle.ts <postgres://…> [rounds=16] [jobs per round=2000] [batch=8]
 */
import pg from "pg"

const [url = "", roundsArg = "16", perArg = "2000", batchArg = "8"] = process.argv.slice(2)
const rounds = Number(roundsArg)
const per = Number(perArg)
const batch = Number(batchArg)
const { MIGRATIONS } = await import("../../src/internal/store/postgres.ts")

const tag = `pgsettle_${process.pid}`
const schemas = { old: `${tag}_old`, new: `${tag}_new` } as const
const client = new pg.Client({ connectionString: url })
await client.connect()
// the store's own migrations (plain SQL: no store, no LISTEN), the old schema up to version 6
for (const [which, schema] of Object.entries(schemas)) {
  await client.query(`CREATE SCHEMA "${schema}"`)
  for (const migration of MIGRATIONS.slice(0, which === "old" ? 6 : MIGRATIONS.length)) {
    for (const text of migration(`"${schema}"`).split(";").filter((t) => t.trim() !== "")) await client.query(text)
  }
}

const statement = (schema: string, xid: boolean) =>
  `UPDATE "${schema}".wp_job j
    SET state = v.state, exit = v.exit, finished_at = floor(extract(epoch from now()) * 1000)::bigint,${
    xid ? " settled_xid = pg_current_xact_id()::text::bigint," : ""
  } cancel_requested = false,
      lease_token = NULL, lease_until = NULL
    FROM (SELECT l.seq, v.token, v.state, v.exit
      FROM jsonb_to_recordset($1::jsonb) AS v(token text, state text, exit text)
      JOIN "${schema}".wp_job l ON l.lease_token = v.token AND l.state = 'running'
      ORDER BY l.seq FOR UPDATE OF l) v
    WHERE j.seq = v.seq
    RETURNING v.token`

const fill = async (schema: string, round: number) => {
  await client.query(
    `INSERT INTO "${schema}".wp_job (id, queue, task, payload, priority, rank, state, attempts, max_attempts, timeout_ms,
      created_at, visible_at, started_at, lease_token, lease_until)
    SELECT '${round}-' || i, 'default', 'Echo', '{}', 0, 0, 'running', 1, 1, 0, 0, 0, 0, 'tok-${round}-' || i, 9e15
    FROM generate_series(1, ${per}) i`
  )
}

const settleRound = async (schema: string, xid: boolean, round: number) => {
  const text = statement(schema, xid)
  const started = performance.now()
  for (let i = 1; i <= per; i += batch) {
    const tokens = Array.from({ length: Math.min(batch, per - i + 1) }, (_, k) => ({
      token: `tok-${round}-${i + k}`,
      state: "succeeded",
      exit: "{\"_tag\":\"Success\",\"value\":0}"
    }))
    const result = await client.query({ name: `${schema}-settle`, text, values: [JSON.stringify(tokens)] })
    if (result.rowCount !== tokens.length) throw new Error(`settled ${result.rowCount} of ${tokens.length}`)
  }
  return ((performance.now() - started) * 1000) / per
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const olds: Array<number> = []
const news: Array<number> = []
const ratios: Array<number> = []
try {
  for (let round = 0; round < rounds; round++) {
    await fill(schemas.old, round)
    await fill(schemas.new, round)
    const order = round % 2 === 0 ? (["old", "new"] as const) : (["new", "old"] as const)
    const took: Record<string, number> = {}
    for (const which of order) took[which] = await settleRound(schemas[which], which === "new", round)
    olds.push(took.old!)
    news.push(took.new!)
    ratios.push(took.new! / took.old!)
    console.log(JSON.stringify({ round, order: order.join(" "), oldUs: +took.old!.toFixed(1), newUs: +took.new!.toFixed(1), ratio: +(took.new! / took.old!).toFixed(3) }))
  }
  console.log(JSON.stringify({
    medianOldUs: +median(olds).toFixed(1),
    medianNewUs: +median(news).toFixed(1),
    medianRatio: +median(ratios).toFixed(3),
    minRatio: +Math.min(...ratios).toFixed(3),
    maxRatio: +Math.max(...ratios).toFixed(3)
  }))
} finally {
  for (const schema of Object.values(schemas)) await client.query(`DROP SCHEMA "${schema}" CASCADE`)
  await client.end()
}
