import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration files each run their own Consul and agent processes: two at a time on
    // the 2-core machine CI uses.
    pool: "forks",
    maxWorkers: 2,
    // Generous: a busy machine (a user's laptop, scripts/cpuhog.sh) makes every process
    // slower. Each wait inside a test has its own bound (scaled by load, see
    // test/helpers/eventually.ts) that fails first and says what it waited for; these only
    // catch a test that hangs. A test that passes takes no longer for them.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ["default"],
  },
});
