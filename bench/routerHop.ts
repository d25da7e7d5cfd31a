// The router → worker section of `npm run bench`: toolmesh's agent-to-agent hop against
// AutoGen's distributed (gRPC) runtime, measured in the same run.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import type { Bench } from "./harness.ts";
import { here, QUICK, THROUGHPUT_MS } from "./harness.ts";
import { measure, ms, ratio, table, type Sample } from "./lib.ts";

/** Measures client → router agent → worker agent, and AutoGen's equivalent, and prints the table. */
export async function routerHopSection(b: Bench): Promise<void> {
  b.say();
  b.say(`## Router → worker → back: toolmesh vs AutoGen's distributed runtime (gRPC)`);
  b.say();
  const router = await b.agent({ BENCH_AGENT_NAME: "router" });
  await b.agent({ BENCH_AGENT_NAME: "worker" });
  const routerClient = await b.v2Client(router.url);
  const forward = () => routerClient.callTool({ name: "forward", arguments: { to: "worker", payload: "x".repeat(100) } });
  const tm1 = await measure(forward, { concurrency: 1, warmup: QUICK ? 20 : 200, count: QUICK ? 100 : 1_000 });
  const tm16 = await measure(forward, { concurrency: 16, warmup: 0, durationMs: THROUGHPUT_MS });
  const autogen = await runAutogen();
  const rows: (string | number)[][] = [
    ["toolmesh (client → router agent → worker agent, MCP over HTTP)", ms(tm1.p50), ms(tm1.p99), Math.round(tm16.rps), ms(tm16.p50)],
  ];
  if ("error" in autogen) {
    b.say(`AutoGen side not measured: ${autogen.error}`);
  } else {
    rows.push([
      `AutoGen ${autogen.version} (router agent → worker agent, GrpcWorkerAgentRuntime ×2 + host)`,
      ms(autogen.c1.p50),
      ms(autogen.c1.p99),
      Math.round(autogen.c16.rps),
      ms(autogen.c16.p50),
    ]);
    rows.push(["toolmesh vs AutoGen", ratio(tm1.p50 / autogen.c1.p50), "", ratio(tm16.rps / autogen.c16.rps), ""]);
  }
  b.say(table(["system", "p50 ms (c=1)", "p99 ms (c=1)", "calls/s (c=16)", "p50 ms (c=16)"], rows));
}

type AutogenResult = { version: string; c1: Sample; c16: Sample } | { error: string };

/** Runs bench/autogen/bench.py in its own virtualenv (bench/autogen/setup.sh makes it). */
async function runAutogen(): Promise<AutogenResult> {
  const python = here("./autogen/.venv/bin/python");
  try {
    if (!existsSync(python)) {
      console.error("bench: setting up AutoGen in bench/autogen/.venv (once; needs python3 and PyPI)...");
      await promisify(execFile)("bash", [here("./autogen/setup.sh")], { timeout: 600_000 });
    }
    const { stdout } = await promisify(execFile)(python, [here("./autogen/bench.py"), QUICK ? "quick" : "full"], { timeout: 300_000 });
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as AutogenResult;
  } catch (e) {
    return { error: `${String(e).slice(0, 300)} (set it up by hand with: bash bench/autogen/setup.sh)` };
  }
}
