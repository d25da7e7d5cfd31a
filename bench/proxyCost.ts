// The gateway-as-a-proxy section of `npm run bench`: the same echo call direct (caller →
// agent), through a plain node:http byte-forwarding proxy, and through the gateway's two
// views, with each process's CPU per 1,000 calls (from /proc), the throughput against the
// direct path and the p50 the hop adds. Repetitions interleaved; medians and spread.
import { cpuSeconds } from "./cpu.ts";
import type { Bench } from "./harness.ts";
import { here, LATENCY_CALLS, median, QUICK, REPS, THROUGHPUT_MS, waitFor } from "./harness.ts";
import { measure, ms, ratio, table } from "./lib.ts";

/** Concurrency of the throughput and CPU points. */
const CONCURRENCY = 16;
const PAYLOAD = "x".repeat(100);

/**
 * BENCH_AB_GATEWAY=<path to another checkout's orchestrator/gateway/main.ts>: a second gateway
 * from that code is measured beside this one, interleaved (an A/B of a change to the gateway).
 */
const AB_GATEWAY = process.env["BENCH_AB_GATEWAY"];

type PathName = "direct" | "plain" | "passthrough" | "mesh" | "passthroughB" | "meshB";
const LABELS: Record<PathName, string> = {
  direct: "toolmesh caller → agent (direct)",
  plain: "toolmesh caller → plain node:http proxy → agent",
  passthrough: "toolmesh caller → gateway /agents/px/mcp → agent",
  mesh: "toolmesh caller → gateway /mcp → agent",
  passthroughB: "B: toolmesh caller → gateway /agents/px/mcp → agent",
  meshB: "B: toolmesh caller → gateway /mcp → agent",
};

/** One repetition of one path: calls/s and CPU per 1,000 calls at c=16, p50 at c=1. */
interface Run {
  rps: number;
  p50: number;
  errors: number;
  /** CPU ms per 1,000 calls, per process: the caller (this process), the hop (proxy or gateway), the agent. */
  cpu: { caller: number; hop: number; agent: number };
}

/** Measures the four paths, interleaved, and prints the rows and the ratios against the targets. */
export async function proxyCostSection(b: Bench): Promise<void> {
  const { calls, pids } = await proxyPaths(b);
  const runs = new Map<PathName, Run[]>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const name of Object.keys(calls) as PathName[]) {
      const hop = name === "plain" ? pids.plain : name === "direct" ? undefined : name.endsWith("B") ? pids.gatewayB : pids.gateway;
      const run = await measureRun(calls[name]!, { caller: process.pid, hop, agent: pids.agent });
      runs.set(name, [...(runs.get(name) ?? []), run]);
    }
  }
  printProxyCost(b, runs);
}

/** The px agent, the plain proxy in front of it, and the gateway's two views of it, registered for the caller. */
async function proxyPaths(b: Bench) {
  const agent = await b.agent({ BENCH_AGENT_NAME: "px" });
  const gateway = await b.gateway();
  const plain = await b.plainServer(here("./plainProxy.ts"), agent.url);
  await b.register("px-plain", plain.url);
  await b.register("px-gw", new URL("/agents/px/mcp", gateway.url).href);
  await b.register("px-mesh", new URL("/mcp", gateway.url).href);
  await waitFor(async () => (await fetch(new URL("/agents/px/mcp", gateway.url), { method: "POST", body: "{}" })).status !== 404);
  const mesh = b.mesh;
  const calls: Partial<Record<PathName, () => Promise<unknown>>> = {
    direct: () => mesh.callTool("px", "echo", { payload: PAYLOAD }),
    plain: () => mesh.callTool("px-plain", "echo", { payload: PAYLOAD }),
    passthrough: () => mesh.callTool("px-gw", "echo", { payload: PAYLOAD }),
    mesh: () => mesh.callTool("px-mesh", "px__echo", { payload: PAYLOAD }),
  };
  let gatewayB: number | undefined;
  if (AB_GATEWAY) {
    const other = await b.agent({}, AB_GATEWAY, "gateway ready");
    gatewayB = other.process.pid!;
    await b.register("px-gw-b", new URL("/agents/px/mcp", other.url).href);
    await b.register("px-mesh-b", new URL("/mcp", other.url).href);
    await waitFor(async () => (await fetch(new URL("/agents/px/mcp", other.url), { method: "POST", body: "{}" })).status !== 404);
    calls.passthroughB = () => mesh.callTool("px-gw-b", "echo", { payload: PAYLOAD });
    calls.meshB = () => mesh.callTool("px-mesh-b", "px__echo", { payload: PAYLOAD });
  }
  return { calls, pids: { agent: agent.process.pid!, gateway: gateway.process.pid!, plain: plain.pid, gatewayB } };
}

/** One repetition of a path: the CPU each process used over a throughput window, then a latency run. */
async function measureRun(call: () => Promise<unknown>, pids: { caller: number; hop: number | undefined; agent: number }): Promise<Run> {
  await measure(call, { concurrency: CONCURRENCY, warmup: QUICK ? 50 : 300, count: 0 });
  const used = (pid: number | undefined) => (pid === undefined ? 0 : (cpuSeconds(pid) ?? Number.NaN));
  const before = { caller: used(pids.caller), hop: used(pids.hop), agent: used(pids.agent) };
  const sample = await measure(call, { concurrency: CONCURRENCY, warmup: 0, durationMs: THROUGHPUT_MS });
  const per1000 = (now: number, then: number) => ((now - then) * 1_000 * 1_000) / Math.max(1, sample.n);
  const cpu = {
    caller: per1000(used(pids.caller), before.caller),
    hop: per1000(used(pids.hop), before.hop),
    agent: per1000(used(pids.agent), before.agent),
  };
  const latency = await measure(call, { concurrency: 1, warmup: QUICK ? 20 : 100, count: LATENCY_CALLS });
  return { rps: sample.rps, p50: latency.p50, errors: sample.errors + latency.errors, cpu };
}

const spread = (xs: number[], f: (v: number) => string) => (xs.length > 1 ? `${f(Math.min(...xs))}–${f(Math.max(...xs))}` : "-");
const cpuMs = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : "-");

/** The per-path table and the ratio table (per repetition, then median and spread). */
function printProxyCost(b: Bench, runs: Map<PathName, Run[]>): void {
  const direct = runs.get("direct")!;
  b.say();
  b.say(`## The gateway as a proxy: CPU per call`);
  b.say();
  b.say(
    `The echo tool (100 B): calls/s and CPU at concurrency ${CONCURRENCY} over ${THROUGHPUT_MS / 1_000} s, p50 at concurrency 1 over ${LATENCY_CALLS} calls; medians of ${REPS} interleaved repetition${REPS > 1 ? "s" : ""} (spread: lowest–highest). CPU is user + system time from /proc, in ms per 1,000 calls, for the caller (this process), the hop (the plain proxy or the gateway) and the agent.`,
  );
  b.say();
  const rows = [...runs].map(([name, rs]) => {
    const rps = rs.map((r) => r.rps);
    const added = rs.map((r, i) => r.p50 - direct[i]!.p50);
    return [
      LABELS[name],
      Math.round(median(rps)),
      spread(rps, (v) => String(Math.round(v))),
      ratio(median(rps) / median(direct.map((r) => r.rps))),
      ms(median(rs.map((r) => r.p50))),
      name === "direct" ? "-" : `${ms(median(added))} (${spread(added, ms)})`,
      cpuMs(median(rs.map((r) => r.cpu.caller))),
      name === "direct"
        ? "-"
        : `${cpuMs(median(rs.map((r) => r.cpu.hop)))} (${spread(
            rs.map((r) => r.cpu.hop),
            cpuMs,
          )})`,
      cpuMs(median(rs.map((r) => r.cpu.agent))),
      rs.reduce((n, r) => n + r.errors, 0),
    ];
  });
  b.say(
    table(["path", "calls/s", "spread", "× direct", "p50 ms (c=1)", "added p50 ms", "CPU caller", "CPU hop", "CPU agent", "errors"], rows),
  );
  printTargets(b, runs);
}

/** Gateway CPU per call against the agent's (same calls) and the plain proxy's; throughput and added p50 against the targets. */
function printTargets(b: Bench, runs: Map<PathName, Run[]>): void {
  const plain = runs.get("plain")!;
  const direct = runs.get("direct")!;
  const rows: (string | number)[][] = [];
  for (const view of ["passthrough", "mesh", "passthroughB", "meshB"] as const) {
    const rs = runs.get(view);
    if (!rs) continue;
    const vsAgent = rs.map((r) => r.cpu.hop / r.cpu.agent);
    const vsPlain = rs.map((r, i) => r.cpu.hop / plain[i]!.cpu.hop);
    const vsDirect = rs.map((r, i) => r.rps / direct[i]!.rps);
    const added = rs.map((r, i) => r.p50 - direct[i]!.p50);
    const cell = (xs: number[], f: (v: number) => string, target: string, met: boolean) =>
      `${f(median(xs))} (${spread(xs, f)}) ${met ? "met" : "not met"} (target ${target})`;
    rows.push([
      `${view.endsWith("B") ? "B: " : ""}${view.startsWith("mesh") ? "/mcp" : "/agents/px/mcp"}`,
      cell(vsAgent, ratio, "≤ 0.50×", median(vsAgent) <= 0.5),
      cell(vsPlain, ratio, "≤ 1.50×", median(vsPlain) <= 1.5),
      cell(vsDirect, ratio, "≥ 0.80×", median(vsDirect) >= 0.8),
      cell(added, ms, "≤ 0.20 ms", median(added) <= 0.2),
    ]);
  }
  b.say();
  b.say(`Against the targets (issue #24), each ratio taken per repetition, then the median (spread):`);
  b.say();
  b.say(
    table(["gateway view", "gateway CPU / agent CPU", "gateway CPU / plain proxy CPU", "calls/s × direct", "added p50 ms (c=1)"], rows),
  );
}
