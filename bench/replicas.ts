// The replicas section of `npm run bench`: one agent kind with 1, 2 and 4 replicas behind the
// caller and the gateway, and where the CPU went.
import { cpus } from "node:os";
import { cpuShare } from "./cpu.ts";
import type { Bench } from "./harness.ts";
import { QUICK, THROUGHPUT_MS, waitFor, type Started } from "./harness.ts";
import { measure, ms, table } from "./lib.ts";

/** Measures calls/s and CPU shares with 1, 2 and 4 replicas and prints the table. */
export async function replicasSection(b: Bench): Promise<void> {
  b.say();
  b.say(`## Replicas`);
  b.say();
  b.say(
    `Throughput of one agent kind (the echo tool, 100 B, concurrency 64) with 1, 2 and 4 replicas, and where the CPU went (share of one core per process group; this machine has ${cpus().length} cores).`,
  );
  b.say();
  const gateway = await b.gateway();
  await b.register("rep-gw", new URL("/agents/rep/mcp", gateway.url).href);
  const reps: Started[] = [];
  const rows: (string | number)[][] = [];
  for (const count of [1, 2, 4]) {
    while (reps.length < count) reps.push(await b.agent({ BENCH_AGENT_NAME: "rep" }));
    await waitFor(async () => (await b.mesh.catalog.instances("rep")).length === count);
    await new Promise((r) => setTimeout(r, 300)); // the gateway's catalog follows Consul
    for (const [path, call] of [
      ["toolmesh caller → replicas", () => b.mesh.callTool("rep", "echo", { payload: "x".repeat(100) })],
      ["toolmesh caller → gateway → replicas", () => b.mesh.callTool("rep-gw", "echo", { payload: "x".repeat(100) })],
    ] as const) {
      const { result, share } = await cpuShare(
        {
          bench: [process.pid],
          gateway: [gateway.process.pid!],
          agents: reps.map((r) => r.process.pid!),
          consul: b.consul.process.pid ? [b.consul.process.pid] : [],
        },
        () => measure(call, { concurrency: 64, warmup: QUICK ? 50 : 300, durationMs: THROUGHPUT_MS }),
      );
      const pct = (k: string) => `${Math.round((share[k] ?? 0) * 100)}%`;
      rows.push([
        path,
        count,
        Math.round(result.rps),
        ms(result.p50),
        pct("bench"),
        pct("gateway"),
        pct("agents"),
        pct("consul"),
        result.errors,
      ]);
    }
  }
  b.say(table(["path", "replicas", "calls/s", "p50 ms", "CPU: caller", "CPU: gateway", "CPU: agents", "CPU: Consul", "errors"], rows));
}
