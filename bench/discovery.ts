// The discovery section of `npm run bench`: process start to first served call, a replica
// killed under load, and a catalog of 2,000 instances.
import { MeshClient } from "../src/client/meshClient.ts";
import type { Bench } from "./harness.ts";
import { QUICK, waitFor } from "./harness.ts";
import { settledHeap } from "./memory.ts";
import { table } from "./lib.ts";

/** Measures the discovery rows and prints their table. */
export async function discoverySection(b: Bench): Promise<void> {
  b.say();
  b.say(`## Discovery`);
  b.say();
  const rows: string[][] = [];
  rows.push(["process start → first served call (median)", `${Math.round(await firstServedCall(b))} ms`]);
  rows.push(await killUnderLoad(b));
  rows.push(...(await bigCatalog(b)));
  b.say(table(["measure", "result"], rows));
}

/** Median time from starting an agent process to its first call served through the caller. */
async function firstServedCall(b: Bench): Promise<number> {
  const starts: number[] = [];
  for (let i = 0; i < (QUICK ? 1 : 3); i++) {
    const t0 = performance.now();
    const name = `fresh-${i}`;
    const p = b.agent({ BENCH_AGENT_NAME: name });
    for (;;) {
      try {
        await b.mesh.callTool(name, "echo", { payload: "hi" }, { timeoutMs: 1_000 });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    starts.push(performance.now() - t0);
    await p;
  }
  starts.sort((x, y) => x - y);
  return starts[Math.floor(starts.length / 2)]!;
}

/** SIGKILL of one of two replicas while eight loops call them: how many calls failed. */
async function killUnderLoad(b: Bench): Promise<string[]> {
  const replicas = [await b.agent({ BENCH_AGENT_NAME: "pair" }), await b.agent({ BENCH_AGENT_NAME: "pair" })];
  await waitFor(async () => (await b.mesh.catalog.instances("pair")).length === 2);
  let failed = 0;
  let calls = 0;
  let lastFailure = 0;
  let stop = false;
  const killAt = performance.now() + 500;
  const loops = Array.from({ length: 8 }, async () => {
    while (!stop) {
      try {
        await b.mesh.callTool("pair", "echo", { payload: "x" }, { timeoutMs: 3_000 });
      } catch {
        failed++;
        lastFailure = performance.now() - killAt;
      }
      calls++;
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  replicas[0]!.process.signal("SIGKILL");
  await new Promise((r) => setTimeout(r, QUICK ? 1_000 : 3_000));
  stop = true;
  await Promise.all(loops);
  return [
    "SIGKILL of 1 of 2 replicas under load (8 loops, read-only tool)",
    `${calls} calls, ${failed} failed${failed ? `, last ${Math.round(lastFailure)} ms after the kill` : ""}`,
  ];
}

/** 2,000 registered instances (200 agents × 10 replicas; QUICK: 200) with 10 tools each, in the real Consul. */
async function bigCatalog(b: Bench): Promise<string[][]> {
  const many = await b.agent({ BENCH_AGENT_NAME: "many-0", BENCH_TOOLS: "10" });
  const manyEntry = (await b.consulClient.healthService("many-0")).value[0]!;
  const port = Number(new URL(many.url).port);
  const kinds = QUICK ? 20 : 200;
  const register = (id: string, name: string) =>
    b.consulClient.registerService({ id, name, address: "127.0.0.1", port, tags: ["mcp"], meta: manyEntry.meta });
  for (let a = 1; a < kinds; a++) for (let r = 0; r < 10; r++) await register(`many-${a}-${r}`, `many-${a}`);
  for (let r = 1; r < 10; r++) await register(`many-0-x${r}`, "many-0");
  const t0 = performance.now();
  const big = new MeshClient({ consul: b.consulClient, callerName: "bench-catalog", catalogMode: "all" });
  await big.start();
  await waitFor(() => big.catalog.agents().filter((a) => a.name.startsWith("many-") && a.tools.length >= 10).length === kinds, 60_000);
  const buildMs = performance.now() - t0;
  const instances = big.catalog.agents().reduce((n, a) => n + (a.name.startsWith("many-") ? a.instances.length : 0), 0);
  // What the catalog itself retains: the heap with it, minus the heap once it is closed
  // (so unrelated garbage from earlier sections does not count).
  const heapWith = await settledHeap();
  await big.close();
  const heapWithout = await settledHeap();
  return [
    [`catalog of ${instances} instances × 10 tools (${kinds} agents): discovered and ready`, `${Math.round(buildMs)} ms`],
    [
      `... heap the caller keeps for it`,
      global.gc ? `${((heapWith - heapWithout) / 2 ** 20).toFixed(1)} MiB` : "not measured (run with node --expose-gc)",
    ],
  ];
}
