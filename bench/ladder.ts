// The ladder of `npm run bench`: call paths from the HTTP floor (a node:http JSON echo)
// through the SDK pairs to toolmesh's caller and its gateway, interleaved repetitions, one table.
import { request as undiciRequest, Agent as UndiciAgent } from "undici";
import type { Bench } from "./harness.ts";
import { here, LATENCY_CALLS, median, QUICK, REPS, THROUGHPUT_MS, waitFor } from "./harness.ts";
import { measure, ms, ratio, table, type Sample } from "./lib.ts";

const FLOOR = "undici → node:http JSON echo (the floor)";
const V1_PAIR = "v1 SDK client → v1 SDK server";
const V2_PAIR = "v2 SDK client → v2 SDK server (baseline)";

type Path = { name: string; call: (payload: string) => Promise<unknown> };
const GROUPS = [
  ["100 B", 100, 1],
  ["100 B", 100, 16],
  ["100 B", 100, 64],
  ["64 KB", 64 * 1024, 1],
  ["64 KB", 64 * 1024, 16],
  ["64 KB", 64 * 1024, 64],
] as const;

/** Measures every path of the ladder and prints its table. */
export async function ladderSection(b: Bench): Promise<void> {
  const paths = await ladderPaths(b);
  const samples = new Map<string, Sample[]>();
  for (const [label, size, concurrency] of GROUPS) {
    const payload = "x".repeat(size);
    // Repetitions interleaved (every path once, then again): drift in the machine hits every path alike.
    for (let rep = 0; rep < REPS; rep++) {
      for (const p of paths) {
        const sample = await measure(() => p.call(payload), {
          concurrency,
          warmup: QUICK ? 50 : 300,
          ...(concurrency === 1 ? { count: LATENCY_CALLS } : { durationMs: THROUGHPUT_MS }),
        });
        const key = `${p.name}|${label}|${concurrency}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
      }
    }
  }
  b.say();
  b.say(`## Tool-call latency and throughput: the ladder`);
  b.say();
  b.say(
    `Medians of ${REPS} interleaved repetition${REPS > 1 ? "s" : ""} (spread: the lowest and highest calls/s). Ratios are throughput against the v2 SDK pair (the baseline), the v1 pair and the floor in the same row group, and p50 against the v2 pair.`,
  );
  b.say();
  b.say(
    table(
      ["path", "payload", "conc.", "p50 ms", "p99 ms", "calls/s", "spread", "× v2 pair", "× v1 pair", "× floor", "p50 × v2", "errors"],
      ladderRows(paths, samples),
    ),
  );
}

/** The paths, from the floor up: each one a client of its own, made once. */
async function ladderPaths(b: Bench): Promise<Path[]> {
  const floor = await b.plainServer(here("./rawEcho.ts"));
  const plain = await b.plainServer(here("./plainServer.ts"));
  const plainV2 = await b.plainServer(here("./plainServerV2.ts"));
  const echo = await b.agent({ BENCH_AGENT_NAME: "echo" });
  const gateway = await b.gateway();
  // The gateway's two views, registered as toolmesh endpoints so toolmesh's caller can call through them.
  await b.register("echo-gw", new URL("/agents/echo/mcp", gateway.url).href);
  await b.register("mesh-gw", new URL("/mcp", gateway.url).href);
  // The gateway's catalog follows Consul: its passthrough for echo exists once it has seen the agent.
  await waitFor(async () => (await fetch(new URL("/agents/echo/mcp", gateway.url), { method: "POST", body: "{}" })).status !== 404);
  const echoCall = (c: { callTool(p: { name: string; arguments: Record<string, unknown> }): Promise<unknown> }) => (payload: string) =>
    c.callTool({ name: "echo", arguments: { payload } });
  const mesh = b.mesh;
  return [
    { name: FLOOR, call: floorCaller(floor.url) },
    { name: V1_PAIR, call: echoCall(await b.v1Client(plain.url)) },
    { name: V2_PAIR, call: echoCall(await b.v2Client(plainV2.url)) },
    { name: "v1 SDK client → toolmesh agent (2025-11-25)", call: echoCall(await b.v1Client(echo.url)) },
    { name: "v2 SDK client → toolmesh agent (2026-07-28)", call: echoCall(await b.v2Client(echo.url)) },
    { name: "toolmesh caller → agent", call: (payload) => mesh.callTool("echo", "echo", { payload }) },
    { name: "toolmesh caller → gateway /agents/echo/mcp → agent", call: (payload) => mesh.callTool("echo-gw", "echo", { payload }) },
    { name: "toolmesh caller → gateway /mcp → agent", call: (payload) => mesh.callTool("mesh-gw", "echo__echo", { payload }) },
  ];
}

/** The floor's client: one undici POST of a JSON-RPC tools/call, its JSON answer read. */
function floorCaller(url: string): (payload: string) => Promise<unknown> {
  const agent = new UndiciAgent({ keepAliveTimeout: 30_000 });
  let id = 0;
  return async (payload) => {
    const res = await undiciRequest(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method: "tools/call", params: { name: "echo", arguments: { payload } } }),
      dispatcher: agent,
    });
    return res.body.json();
  };
}

/** One row per path and group: medians over the repetitions, spread, ratios against the pairs and the floor. */
function ladderRows(paths: Path[], samples: Map<string, Sample[]>): (string | number)[][] {
  const summary = (key: string) => {
    const s = samples.get(key)!;
    return {
      p50: median(s.map((x) => x.p50)),
      p99: median(s.map((x) => x.p99)),
      rps: median(s.map((x) => x.rps)),
      min: Math.min(...s.map((x) => x.rps)),
      max: Math.max(...s.map((x) => x.rps)),
      errors: s.reduce((n, x) => n + x.errors, 0),
    };
  };
  const rows: (string | number)[][] = [];
  for (const [label, , concurrency] of GROUPS) {
    const g = (name: string) => summary(`${name}|${label}|${concurrency}`);
    const [v2, v1, floor] = [g(V2_PAIR), g(V1_PAIR), g(FLOOR)];
    for (const p of paths) {
      const s = g(p.name);
      rows.push([
        p.name,
        label,
        concurrency,
        ms(s.p50),
        ms(s.p99),
        Math.round(s.rps),
        REPS > 1 ? `${Math.round(s.min)}–${Math.round(s.max)}` : "-",
        ratio(s.rps / v2.rps),
        ratio(s.rps / v1.rps),
        ratio(s.rps / floor.rps),
        ratio(s.p50 / v2.p50),
        s.errors,
      ]);
    }
  }
  return rows;
}
