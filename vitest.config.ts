import { availableParallelism } from "node:os"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Concurrent tests (the examples, each a child process doing CPU work) start no more than one
    // per core: more would not finish sooner, and each one's time limit would have to cover its
    // neighbours' CPU as well as its own. (Files already run one at a time on 2 cores.)
    maxConcurrency: availableParallelism()
  }
})
