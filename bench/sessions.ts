// The sessions section of `npm run bench`: does sticky placement still pay?
// A session's state lives in Consul KV either way (any replica can continue it). With sticky
// placement (stateful: true) a replica may also keep it in memory; without, every read must
// go to KV, since another replica may have written since. Two replicas of each kind; each
// call reads its session's notes (one session per concurrent caller).
import { randomInt } from "node:crypto";
import { rootContext } from "../src/context/meshContext.ts";
import type { Bench } from "./harness.ts";
import { PROBE, QUICK, THROUGHPUT_MS, waitFor } from "./harness.ts";
import { measure, ms, ratio, table, type Sample } from "./lib.ts";

const KINDS = [
  ["sticky", "stateful agent, sticky placement (reads from the replica's memory)"],
  ["spread", "no stickiness (reads from Consul KV every call)"],
] as const;

/** Measures session reads with and without sticky placement and prints the table. */
export async function sessionsSection(b: Bench): Promise<void> {
  b.say();
  b.say(`## Sessions: sticky placement vs state read from Consul KV on every call`);
  b.say();
  for (const [name, env] of [
    ["sticky", { PROBE_STATEFUL: "1" }],
    ["spread", { PROBE_STATEFUL: "0", PROBE_CACHE: "0" }],
  ] as const) {
    for (let i = 0; i < 2; i++) await b.agent({ PROBE_NAME: name, ...env }, PROBE);
  }
  const mesh = b.mesh;
  await waitFor(async () => (await mesh.catalog.instances("sticky")).length === 2 && (await mesh.catalog.instances("spread")).length === 2);
  const rows: (string | number)[][] = [];
  const samples: Record<string, Sample> = {};
  for (const concurrency of [1, 16]) {
    for (const [name, label] of KINDS) {
      const sample = await sessionReads(b, name, concurrency);
      samples[`${name}|${concurrency}`] = sample;
      const base = samples[`sticky|${concurrency}`]!;
      rows.push([label, concurrency, ms(sample.p50), ms(sample.p99), Math.round(sample.rps), ratio(sample.p50 / base.p50), sample.errors]);
    }
  }
  b.say(table(["session read", "conc.", "p50 ms", "p99 ms", "calls/s", "p50 vs sticky", "errors"], rows));
}

/** One session per concurrent caller, each with a note, then reads of random sessions. */
async function sessionReads(b: Bench, name: string, concurrency: number): Promise<Sample> {
  const sessions = Array.from({ length: concurrency }, (_, i) => `bench-${name}-${concurrency}-${i}`);
  const read = () =>
    b.mesh.callTool(name, "recall", {}, { context: rootContext({ caller: "bench", sessionId: sessions[randomInt(sessions.length)] }) });
  for (const session of sessions)
    await b.mesh.callTool(name, "remember", { note: "n" }, { context: rootContext({ caller: "bench", sessionId: session }) });
  return measure(read, {
    concurrency,
    warmup: QUICK ? 20 : 100,
    ...(concurrency === 1 ? { count: QUICK ? 200 : 1_000 } : { durationMs: THROUGHPUT_MS }),
  });
}
