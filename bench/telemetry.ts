#!/usr/bin/env node
// `npm run bench:telemetry`: what telemetry costs a call, caller → agent over real HTTP with a
// real Consul, measured in one run: off (no OTEL_* variables: the default), hop reports on (what
// an open console asks of every call through the gateway), and OpenTelemetry traces on (the
// Node SDK exporting every span over OTLP/HTTP to a receiver in this process), on both sides.
// Off and hop reports are interleaved over 3 repetitions; traces, which cannot be switched off
// again in a process once started, are measured after them against a second agent started with
// the OTEL_* variables. Prints a Markdown table and writes bench/results/telemetry.md.
import { randomInt } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AgentProcess } from "../orchestrator/launcher/agentProcess.ts";
import { MeshClient } from "../src/client/meshClient.ts";
import { rootContext } from "../src/context/meshContext.ts";
import { ConsulClient } from "../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul } from "../src/consul/devAgent.ts";
import { startTracing, stopTracing } from "../src/telemetry/tracing.ts";
import { measure, ms, ratio, table, type Sample } from "./lib.ts";

const QUICK = process.env["BENCH_QUICK"] === "1";
const REPS = QUICK ? 1 : 3;
const LATENCY_CALLS = QUICK ? 200 : 2_000;
const THROUGHPUT_MS = QUICK ? 500 : 3_000;
const ECHO = fileURLToPath(new URL("./echoAgent.ts", import.meta.url));
const logDir = mkdtempSync(join(tmpdir(), "toolmesh-bench-telemetry-"));

// An OTLP/HTTP receiver that takes every export (as a collector on the same machine would).
let exported = 0;
const sink = createServer((req, res) => {
  req.on("data", (c: Buffer) => (exported += c.length));
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
});
await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
const endpoint = `http://127.0.0.1:${(sink.address() as { port: number }).port}`;
const OTEL = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" };

// Its own loopback address (Consul's ports are fixed): beside any other Consul on this machine.
const bind = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(2, 255)}`;
const consul = await startDevConsul({ bindAddress: bind, binary: await resolveConsulBinary(), logFile: join(logDir, "consul.log") });
const agents: AgentProcess[] = [];
async function agent(name: string, env: NodeJS.ProcessEnv): Promise<void> {
  const p = new AgentProcess({
    agent: ECHO,
    label: name,
    port: 0,
    consul: consul.address,
    logFile: join(logDir, `${name}.log`),
    env: { BENCH_AGENT_NAME: name, MESH_LOG_LEVEL: "info", ...env },
  });
  await p.start();
  agents.push(p);
}
await agent("plain", {});
await agent("traced", OTEL);
const consulClient = new ConsulClient({ address: consul.address });
const mesh = new MeshClient({ consul: consulClient, callerName: "bench" });
const payload = { payload: "x".repeat(100) };
const call =
  (agentName: string, reportHops = false) =>
  () =>
    mesh.call(agentName, "echo", payload, { context: rootContext({ caller: "bench", reportHops }) });

type Point = { latency: Sample; throughput: Sample };
const point = async (fn: () => Promise<unknown>): Promise<Point> => ({
  latency: await measure(fn, { concurrency: 1, warmup: QUICK ? 50 : 300, count: LATENCY_CALLS }),
  throughput: await measure(fn, { concurrency: 16, warmup: QUICK ? 50 : 300, durationMs: THROUGHPUT_MS }),
});
// Warm both paths (JIT, connections) before anything is measured.
await point(call("plain"));
await point(call("plain", true));
const runs: Record<string, Point[]> = { off: [], hops: [], traces: [] };
for (let rep = 0; rep < REPS; rep++) {
  runs["off"]!.push(await point(call("plain")));
  runs["hops"]!.push(await point(call("plain", true)));
}
await startTracing("bench-caller", {}, { ...process.env, ...OTEL });
for (let rep = 0; rep < REPS; rep++) runs["traces"]!.push(await point(call("traced")));
await stopTracing();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => (xs.length > 1 ? ` (${ms(Math.min(...xs))}-${ms(Math.max(...xs))})` : "");
const stat = (k: string, f: (p: Point) => number) => median(runs[k]!.map(f));
const rows = [
  ["off (no OTEL_* variables: the default)", "off"],
  ["hop reports (a console is watching)", "hops"],
  ["OpenTelemetry traces, both sides, OTLP/HTTP export", "traces"],
].map(([label, k]) => [
  label!,
  ms(stat(k!, (p) => p.latency.p50)) + spread(runs[k!]!.map((p) => p.latency.p50)),
  ms(stat(k!, (p) => p.latency.p99)),
  Math.round(stat(k!, (p) => p.throughput.rps)) + spread(runs[k!]!.map((p) => Math.round(p.throughput.rps))).replace(/\.00/g, ""),
  ratio(stat(k!, (p) => p.latency.p50) / stat("off", (p) => p.latency.p50)),
  ratio(stat(k!, (p) => p.throughput.rps) / stat("off", (p) => p.throughput.rps)),
  String(runs[k!]!.reduce((n, p) => n + p.latency.errors + p.throughput.errors, 0)),
]);
const report = [
  "# What telemetry costs a call",
  "",
  `Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? "?"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. ` +
    `caller → agent (\`echo\`, 100 B) over HTTP, ${LATENCY_CALLS} calls at concurrency 1 and ${THROUGHPUT_MS / 1_000} s at concurrency 16 per point; ` +
    `medians of ${REPS} repetitions (spread in brackets); ratios against "off" in this run. ${Math.round(exported / 1024)} KiB of OTLP exported.`,
  "",
  table(["telemetry", "c=1 p50 ms", "c=1 p99 ms", "c=16 calls/s", "p50 vs off", "calls/s vs off", "errors"], rows),
  "",
].join("\n");
process.stdout.write(report);
mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
writeFileSync(fileURLToPath(new URL("./results/telemetry.md", import.meta.url)), report);

await mesh.close();
consulClient.destroy();
await Promise.all(agents.map((a) => a.stop(3_000)));
await consul.stop();
sink.close();
