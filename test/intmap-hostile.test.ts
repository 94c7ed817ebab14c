/**
 * Hostile tests of IntMap's Fibonacci hashing (2e38ec1) and of the class check that reads a
 * function's own `prototype` first (b31bfd6): both must answer exactly as before.
 *
 * IntMap: against a `Map` model, seeded, over ids far apart, near 2^31, 2^32 and 2^53 (where the
 * hash, `Math.imul`, wraps: ids 2^32 apart share a home slot), ids that all share one home slot
 * at every table size, and long sliding windows (many deletions behind, growth ahead). Nothing
 * iterates an IntMap (it has no iterator), so no caller can depend on an order.
 */
import { assert, describe, it } from "@effect/vitest"
import { IntMap } from "../src/internal/intMap.ts"
import { isClass } from "../src/internal/config.ts"
import { prng } from "./helpers.ts"

/** Runs `steps` random operations on an IntMap and a Map model, ids drawn by `pick`; checks every answer. */
const against = (seed: number, steps: number, pick: (random: () => number, model: Map<number, number>) => number) => {
  const random = prng(seed)
  const map = new IntMap<number>()
  const model = new Map<number, number>()
  let keys: Array<number> = []
  for (let step = 0; step < steps; step++) {
    const roll = random()
    if (roll < 0.45) {
      const id = pick(random, model)
      if (!model.has(id)) keys.push(id)
      map.set(id, step)
      model.set(id, step)
    } else if (roll < 0.85 && keys.length > 0) {
      // a random one in hand, or the oldest (a sliding window)
      const at = random() < 0.5 ? 0 : Math.floor(random() * keys.length)
      const id = keys.splice(at, 1)[0]!
      if (map.delete(id) !== true) assert.fail(`seed ${seed} step ${step}: delete ${id} of an id in hand`)
      model.delete(id)
    } else {
      const id = random() < 0.5 && keys.length > 0 ? keys[Math.floor(random() * keys.length)]! : pick(random, model)
      if (map.get(id) !== model.get(id)) assert.fail(`seed ${seed} step ${step}: get ${id}: ${map.get(id)} vs ${model.get(id)}`)
      if (map.has(id) !== model.has(id)) assert.fail(`seed ${seed} step ${step}: has ${id}`)
      if (!model.has(id) && map.delete(id)) assert.fail(`seed ${seed} step ${step}: delete ${id} of an id not in hand`)
    }
    if (map.size !== model.size) assert.fail(`seed ${seed} step ${step}: size ${map.size} vs ${model.size}`)
    if (keys.length > 4096) {
      // keep the window bounded: drop the older half
      for (const id of keys.splice(0, 2048)) {
        assert.isTrue(map.delete(id))
        model.delete(id)
      }
    }
  }
  for (const [id, value] of model) assert.strictEqual(map.get(id), value, `seed ${seed}: ${id} at the end`)
  keys = []
  return map
}

describe("IntMap, hostile (Fibonacci hashing)", () => {
  it("agrees with a Map over 2 million random operations on ids far apart and near 2^31, 2^32 and 2^53", () => {
    const bases = [0, 2 ** 31 - 64, 2 ** 32 - 64, 2 ** 53 - 4096, 2 ** 40, 123_456_789]
    let seed = 100
    for (const base of bases) {
      against(seed++, 200_000, (random) => base + Math.floor(random() * 4000))
    }
    // far apart: any safe integer, and ids exactly 2^32 apart (the same hash)
    against(seed++, 400_000, (random) =>
      random() < 0.5
        ? Math.floor(random() * Number.MAX_SAFE_INTEGER)
        : Math.floor(random() * 64) + 2 ** 32 * Math.floor(random() * 2000))
    against(seed++, 400_000, (random) => (random() < 0.5 ? 0 : 2 ** 31) + Math.floor(random() * 300) * 2 ** 32)
  }, 120_000)

  it("agrees with a Map over a long sliding window of sequential ids (job ids), window sizes 1 to 1000", () => {
    const random = prng(7)
    for (const window of [1, 2, 3, 7, 64, 128, 129, 1000]) {
      const map = new IntMap<number>()
      const model = new Map<number, number>()
      let low = 0
      let next = 0
      for (let step = 0; step < 300_000; step++) {
        if (next - low < window && random() < 0.6) {
          map.set(next, step)
          model.set(next, step)
          next++
        } else if (next > low) {
          // mostly the oldest goes; sometimes one out of order (a long job ends late)
          const id = random() < 0.8 ? low : low + Math.floor(random() * (next - low))
          assert.strictEqual(map.delete(id), model.delete(id), `window ${window} step ${step} delete ${id}`)
          while (low < next && !model.has(low)) low++
        }
        if (map.size !== model.size) assert.fail(`window ${window} step ${step}: size`)
        if (step % 97 === 0) {
          for (let id = Math.max(0, low - 3); id < next + 3; id++) {
            if (map.get(id) !== model.get(id)) assert.fail(`window ${window} step ${step}: get ${id}`)
          }
        }
      }
    }
  }, 120_000)

  it("keeps ids that share a home slot at every table size apart (ids 2^32 apart), through growth and deletions in any order", () => {
    const map = new IntMap<number>()
    const ids = Array.from({ length: 300 }, (_, i) => 5 + 2 ** 32 * i)
    for (const id of ids) map.set(id, id)
    assert.strictEqual(map.size, 300)
    const random = prng(3)
    const order = ids.slice().sort(() => random() - 0.5)
    const gone = new Set<number>()
    for (const id of order) {
      assert.isTrue(map.delete(id))
      gone.add(id)
      for (const other of ids) assert.strictEqual(map.get(other), gone.has(other) ? undefined : other)
    }
    assert.strictEqual(map.size, 0)
    // and it is usable after being emptied
    map.set(0, 1)
    assert.strictEqual(map.get(0), 1)
  })

  it("scatters a window of sequential ids: no run of full slots is longer than a few (with the id as its own slot, the window was one run)", () => {
    for (const window of [64, 128, 1000]) {
      for (const start of [0, 1000, 2 ** 31 - 50, 2 ** 32 - 10, 2 ** 53 - 2000]) {
        const map = new IntMap<number>()
        for (let i = 0; i < window; i++) map.set(start + i, i)
        // the table's slots, read for this check only (a run may wrap around its end)
        const keys = (map as unknown as { readonly keys: ReadonlyArray<number> }).keys
        let longest = 0
        let run = 0
        for (const key of [...keys, ...keys]) {
          run = key === -1 ? 0 : run + 1
          longest = Math.max(longest, run)
        }
        assert.isAtMost(longest, 8, `window ${window} from ${start}`)
      }
    }
  })

  it("a key 0, a key that is -0, and keys whose product wraps to the same 32 bits are each their own", () => {
    const map = new IntMap<string>()
    map.set(0, "zero")
    assert.strictEqual(map.get(-0), "zero")
    map.set(2 ** 32, "2^32")
    map.set(2 ** 33, "2^33")
    assert.strictEqual(map.get(0), "zero")
    assert.strictEqual(map.get(2 ** 32), "2^32")
    assert.isTrue(map.delete(0))
    assert.strictEqual(map.get(2 ** 32), "2^32")
    assert.strictEqual(map.get(2 ** 33), "2^33")
    assert.strictEqual(map.size, 2)
  })
})

/** The check before b31bfd6. */
const oldIsClass = (f: Function): boolean => {
  try {
    return /^class\b/.test(Function.prototype.toString.call(f))
  } catch {
    return false
  }
}

describe("isClass, hostile (its own prototype read first)", () => {
  it("answers as before for bound, async, generator, Proxy, native, prototype-less and toString-overridden functions and classes", () => {
    class Plain {}
    class Derived extends Plain {}
    class Null extends (null as any) {}
    class Reassigned {}
    // a class's prototype is neither writable nor configurable: these are no-ops (or throw)
    try {
      ;(Reassigned as any).prototype = {}
    } catch {
      // strict mode
    }
    try {
      delete (Reassigned as any).prototype
    } catch {
      // strict mode
    }
    Object.setPrototypeOf(Reassigned, null)
    class Shadowed {}
    Object.defineProperty(Shadowed, "toString", { value: () => "function shadowed() {}" })
    function classLike() {}
    classLike.toString = () => "class Fake {}"
    // an ordinary function's prototype is writable but not configurable: not deletable either
    function deleted() {}
    assert.throws(() => delete (deleted as any).prototype)
    function overwritten() {}
    ;(overwritten as any).prototype = 42
    const functionWithClassProto = function() {}
    functionWithClassProto.prototype = Plain.prototype
    const classSource = new Function("return class Made {}")() as Function
    const evil = new Proxy(function() {}, {
      getOwnPropertyDescriptor() {
        throw new Error("no")
      }
    })
    const revocable = Proxy.revocable(class R {}, {})
    revocable.revoke()
    const hideProto = new Proxy(function() {}, {
      getOwnPropertyDescriptor: (target, key) => key === "prototype" ? undefined : Reflect.getOwnPropertyDescriptor(target, key)
    })
    const cases: Array<[string, Function]> = [
      ["arrow", () => 1],
      ["async arrow", async () => 1],
      ["function", function f() {}],
      ["async function", async function g() {}],
      ["generator", function* h() {}],
      ["async generator", async function* i() {}],
      ["method", { m() {} }.m],
      ["class", Plain],
      ["derived class", Derived],
      ["class extends null", Null],
      ["class with prototype reassigned (a no-op)", Reassigned],
      ["class with toString shadowed", Shadowed],
      ["function whose toString says class", classLike],
      ["function whose prototype could not be deleted", deleted],
      ["function whose prototype was overwritten", overwritten],
      ["function whose prototype is a class's", functionWithClassProto],
      ["class made by new Function", classSource],
      ["bound class", Plain.bind(null)],
      ["bound function", function() {}.bind(null)],
      ["Proxy of a class", new Proxy(Plain, {})],
      ["Proxy of a function", new Proxy(function() {}, {})],
      ["Proxy whose getOwnPropertyDescriptor throws", evil],
      ["revoked Proxy of a class", revocable.proxy as Function],
      ["Proxy hiding a function's prototype (an invariant violation: hasOwn throws)", hideProto],
      ["Date", Date],
      ["Map", Map],
      ["Promise", Promise],
      ["Function", Function],
      ["Math.max", Math.max],
      ["Symbol", Symbol]
    ]
    for (const [name, f] of cases) assert.strictEqual(isClass(f), oldIsClass(f), name)
    // and what they are: only the classes themselves
    assert.deepStrictEqual(
      cases.filter(([, f]) => isClass(f)).map(([name]) => name),
      [
        "class",
        "derived class",
        "class extends null",
        "class with prototype reassigned (a no-op)",
        "class with toString shadowed",
        "class made by new Function"
      ]
    )
  })
})
