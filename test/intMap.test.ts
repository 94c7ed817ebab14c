import { assert, describe, it } from "@effect/vitest"
import { IntMap } from "../src/internal/intMap.ts"
import { prng } from "./helpers.ts"

describe("IntMap (the fiber executor's jobs in hand, by id)", () => {
  it("agrees with a Map over random sets, gets and deletes of ids that come and go as job ids do", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = prng(seed)
      const map = new IntMap<string>()
      const model = new Map<number, string>()
      let next = 0
      for (let step = 0; step < 20_000; step++) {
        const roll = random()
        if (roll < 0.4 || model.size === 0) {
          // mostly new ids, sometimes far ahead (a long-running job beside short ones), sometimes a reused one
          const id = random() < 0.05 ? next + Math.floor(random() * 1000) : random() < 0.05 && model.size > 0 ? [...model.keys()][0]! : next++
          map.set(id, `v${step}`)
          model.set(id, `v${step}`)
        } else if (roll < 0.8) {
          const keys = [...model.keys()]
          const id = keys[Math.floor(random() * keys.length)]!
          assert.strictEqual(map.delete(id), true)
          model.delete(id)
        } else {
          const id = Math.floor(random() * (next + 10))
          assert.strictEqual(map.get(id), model.get(id), `seed ${seed} step ${step} get ${id}`)
          assert.strictEqual(map.has(id), model.has(id))
          if (!model.has(id)) assert.strictEqual(map.delete(id), false)
        }
        assert.strictEqual(map.size, model.size)
      }
      for (const [id, value] of model) assert.strictEqual(map.get(id), value)
    }
  })

  it("keeps ids that collide in its table apart, through growth and deletions in any order", () => {
    const map = new IntMap<number>()
    // every id ≡ 3 mod 64: they all want the same slot
    const ids = Array.from({ length: 40 }, (_, i) => 3 + 64 * i)
    for (const id of ids) map.set(id, id * 2)
    for (const id of ids) assert.strictEqual(map.get(id), id * 2)
    for (const id of ids.filter((_, i) => i % 3 === 1)) assert.isTrue(map.delete(id))
    for (const [i, id] of ids.entries()) assert.strictEqual(map.get(id), i % 3 === 1 ? undefined : id * 2)
    assert.strictEqual(map.size, ids.length - ids.filter((_, i) => i % 3 === 1).length)
  })
})
