#!/usr/bin/env node
// `npm run bench`: toolmesh's call paths against a default MCP SDK client/server pair, the
// router → worker hop against AutoGen's distributed (gRPC) runtime, and discovery timings,
// all measured in this one run on this machine. Prints Markdown tables and writes them to
// bench/results/latest.md. BENCH_QUICK=1 shortens every measurement (a smoke run).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AgentProcess } from "../orchestrator/up/agentProcess.ts";
import { MeshClient } from "../src/client/meshClient.ts";
import { rootContext } from "../src/context/meshContext.ts";
import { ConsulClient } from "../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul } from "../src/consul/devAgent.ts";
import { measure, ms, ratio, table, type Sample } from "./lib.ts";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const ECHO = here("./echoAgent.ts");
const PLAIN = here("./plainServer.ts");
const PLAIN_V2 = here("./plainServerV2.ts");
const GATEWAY = here("../orchestrator/gateway/main.ts");
const PROBE = here("../test/fixtures/probeAgent.ts");
const QUICK = process.env["BENCH_QUICK"] === "1";
const LATENCY_CALLS = QUICK ? 200 : 2_000;
const THROUGHPUT_MS = QUICK ? 500 : 3_000;
const logDir = mkdtempSync(join(tmpdir(), "toolmesh-bench-"));
const out: string[] = [];
const say = (s = "") => {
  console.log(s);
  out.push(s);
};
const children: { stop(): Promise<unknown> }[] = [];
let seq = 0;

async function agent(env: NodeJS.ProcessEnv, consul: string, entry = ECHO, readyMessage?: string) {
  const p = new AgentProcess({
    agent: entry,
    label: `bench-${++seq}`,
    port: 0,
    consul,
    logFile: join(logDir, `bench-${seq}.log`),
    env: { MESH_LOG_LEVEL: "warn", ...env },
    ...(readyMessage ? { readyMessage } : {}),
  });
  // The ready line is logged at info: keep info for start-up, the agent logs little else.
  p.options.env!["MESH_LOG_LEVEL"] = "info";
  const ready = await p.start();
  children.push({ stop: () => p.stop(3_000) });
  return { ...ready, process: p };
}

async function plainServer(entry: string): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, [entry], { stdio: ["ignore", "pipe", "inherit"] });
  children.push({ stop: async () => void child.kill("SIGTERM") });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", resolve));
  return line.trim();
}

/** A client on the SDK's v1 line: 2025-11-25, one session (what most MCP clients in the field are). */
async function v1Client(url: string): Promise<V1Client> {
  const c = new V1Client({ name: "bench", version: "1" });
  await c.connect(new V1Transport(new URL(url)));
  children.push({ stop: () => c.close() });
  return c;
}

/** A v2 SDK client pinned to 2026-07-28: no session, every call one POST with its envelope. */
async function v2Client(url: string): Promise<Client> {
  const c = new Client({ name: "bench", version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
  await c.connect(new StreamableHTTPClientTransport(new URL(url)));
  children.push({ stop: () => c.close() });
  return c;
}

async function main(): Promise<void> {
  const started = Date.now();
  const consulBin = await resolveConsulBinary();
  const bind = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(2, 255)}`;
  const consul = await startDevConsul({ bindAddress: bind, binary: consulBin, logFile: join(logDir, "consul.log") });
  children.push({ stop: () => consul.stop() });
  const consulClient = new ConsulClient({ address: consul.address });

  say(`# toolmesh benchmarks`);
  say();
  say(
    `Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.` +
      ` One client session per path; ${LATENCY_CALLS} calls at concurrency 1, ${THROUGHPUT_MS / 1_000} s per throughput point.`,
  );

  // ---- call paths ---------------------------------------------------------------------------
  const plainUrl = await plainServer(PLAIN);
  const plainV2Url = await plainServer(PLAIN_V2);
  const echo = await agent({ BENCH_AGENT_NAME: "echo" }, consul.address);
  const gateway = await agent({}, consul.address, GATEWAY, "gateway ready");
  const mesh = new MeshClient({ consul: consulClient, callerName: "bench" });
  children.push({ stop: () => mesh.close() });
  const paths: { name: string; call: (payload: string) => Promise<unknown> }[] = [];
  const echoCall = (c: { callTool(p: { name: string; arguments: Record<string, unknown> }): Promise<unknown> }) => (payload: string) =>
    c.callTool({ name: "echo", arguments: { payload } });
  // The first row is the baseline of every row group: the v1 SDK pair, as before the move to v2.
  paths.push({ name: "v1 SDK client → v1 SDK server (baseline)", call: echoCall(await v1Client(plainUrl)) });
  paths.push({ name: "v2 SDK client → v2 SDK server (2026-07-28)", call: echoCall(await v2Client(plainV2Url)) });
  paths.push({ name: "v1 SDK client → toolmesh agent (2025-11-25)", call: echoCall(await v1Client(echo.url)) });
  paths.push({ name: "v2 SDK client → toolmesh agent (2026-07-28)", call: echoCall(await v2Client(echo.url)) });
  paths.push({ name: "toolmesh caller (pool) → agent", call: (payload) => mesh.callTool("echo", "echo", { payload }) });
  const passthrough = gateway.url.replace(/\/mcp$/, "/agents/echo/mcp");
  paths.push({ name: "v1 SDK client → gateway → agent (2025-11-25)", call: echoCall(await v1Client(passthrough)) });
  paths.push({ name: "v2 SDK client → gateway → agent (2026-07-28)", call: echoCall(await v2Client(passthrough)) });

  const results = new Map<string, Sample>();
  for (const [label, size] of [
    ["100 B", 100],
    ["64 KB", 64 * 1024],
  ] as const) {
    const payload = "x".repeat(size);
    for (const concurrency of [1, 16, 64]) {
      for (const p of paths) {
        const sample = await measure(() => p.call(payload), {
          concurrency,
          warmup: QUICK ? 50 : 300,
          ...(concurrency === 1 ? { count: LATENCY_CALLS } : { durationMs: THROUGHPUT_MS }),
        });
        results.set(`${p.name}|${label}|${concurrency}`, sample);
      }
    }
  }
  say();
  say(`## Tool-call latency and throughput`);
  say();
  say(`Ratios are against the baseline in the same row group (same payload and concurrency): throughput ×, p50 ×.`);
  say();
  const rows: (string | number)[][] = [];
  for (const label of ["100 B", "64 KB"]) {
    for (const concurrency of [1, 16, 64]) {
      const base = results.get(`${paths[0]!.name}|${label}|${concurrency}`)!;
      for (const p of paths) {
        const s = results.get(`${p.name}|${label}|${concurrency}`)!;
        rows.push([
          p.name,
          label,
          concurrency,
          ms(s.p50),
          ms(s.p99),
          Math.round(s.rps),
          ratio(s.rps / base.rps),
          ratio(s.p50 / base.p50),
          s.errors,
        ]);
      }
    }
  }
  say(table(["path", "payload", "conc.", "p50 ms", "p99 ms", "calls/s", "thrpt vs base", "p50 vs base", "errors"], rows));

  // ---- router → worker: toolmesh vs AutoGen ----------------------------------------------------
  say();
  say(`## Router → worker → back: toolmesh vs AutoGen's distributed runtime (gRPC)`);
  say();
  const router = await agent({ BENCH_AGENT_NAME: "router" }, consul.address);
  await agent({ BENCH_AGENT_NAME: "worker" }, consul.address);
  const routerClient = await v2Client(router.url);
  const forward = () => routerClient.callTool({ name: "forward", arguments: { to: "worker", payload: "x".repeat(100) } });
  const tm1 = await measure(forward, { concurrency: 1, warmup: QUICK ? 20 : 200, count: QUICK ? 100 : 1_000 });
  const tm16 = await measure(forward, { concurrency: 16, warmup: 0, durationMs: THROUGHPUT_MS });
  const autogen = await runAutogen();
  const agRows: (string | number)[][] = [
    ["toolmesh (client → router agent → worker agent, MCP over HTTP)", ms(tm1.p50), ms(tm1.p99), Math.round(tm16.rps), ms(tm16.p50)],
  ];
  if ("error" in autogen) {
    say(`AutoGen side not measured: ${autogen.error}`);
  } else {
    agRows.push([
      `AutoGen ${autogen.version} (router agent → worker agent, GrpcWorkerAgentRuntime ×2 + host)`,
      ms(autogen.c1.p50),
      ms(autogen.c1.p99),
      Math.round(autogen.c16.rps),
      ms(autogen.c16.p50),
    ]);
    agRows.push(["toolmesh vs AutoGen", ratio(tm1.p50 / autogen.c1.p50), "", ratio(tm16.rps / autogen.c16.rps), ""]);
  }
  say(table(["system", "p50 ms (c=1)", "p99 ms (c=1)", "calls/s (c=16)", "p50 ms (c=16)"], agRows));

  // ---- sessions: does sticky placement still pay? -------------------------------------------------
  // A session's state lives in Consul KV either way (any replica can continue it). With sticky
  // placement (stateful: true) a replica may also keep it in memory; without, every read must
  // go to KV, since another replica may have written since. Two replicas of each kind; each
  // call reads its session's notes (one session per concurrent caller).
  say();
  say(`## Sessions: sticky placement vs state read from Consul KV on every call`);
  say();
  for (const [name, env] of [
    ["sticky", { PROBE_STATEFUL: "1" }],
    ["spread", { PROBE_STATEFUL: "0", PROBE_CACHE: "0" }],
  ] as const) {
    for (let i = 0; i < 2; i++) await agent({ PROBE_NAME: name, ...env }, consul.address, PROBE);
  }
  await waitFor(async () => (await mesh.catalog.instances("sticky")).length === 2 && (await mesh.catalog.instances("spread")).length === 2);
  const sessionRows: (string | number)[][] = [];
  const sessionSample: Record<string, Sample> = {};
  for (const concurrency of [1, 16]) {
    for (const [name, label] of [
      ["sticky", "stateful agent, sticky placement (reads from the replica's memory)"],
      ["spread", "no stickiness (reads from Consul KV every call)"],
    ] as const) {
      const sessions = Array.from({ length: concurrency }, (_, i) => `bench-${name}-${concurrency}-${i}`);
      const read = () =>
        mesh.callTool(name, "recall", {}, { context: rootContext({ caller: "bench", sessionId: sessions[randomInt(sessions.length)] }) });
      for (const session of sessions)
        await mesh.callTool(name, "remember", { note: "n" }, { context: rootContext({ caller: "bench", sessionId: session }) });
      const sample = await measure(read, {
        concurrency,
        warmup: QUICK ? 20 : 100,
        ...(concurrency === 1 ? { count: QUICK ? 200 : 1_000 } : { durationMs: THROUGHPUT_MS }),
      });
      sessionSample[`${name}|${concurrency}`] = sample;
      const base = sessionSample[`sticky|${concurrency}`]!;
      sessionRows.push([
        label,
        concurrency,
        ms(sample.p50),
        ms(sample.p99),
        Math.round(sample.rps),
        ratio(sample.p50 / base.p50),
        sample.errors,
      ]);
    }
  }
  say(table(["session read", "conc.", "p50 ms", "p99 ms", "calls/s", "p50 vs sticky", "errors"], sessionRows));

  // ---- discovery ---------------------------------------------------------------------------------
  say();
  say(`## Discovery`);
  say();
  const discovery: (string | number)[][] = [];
  const starts: number[] = [];
  for (let i = 0; i < (QUICK ? 1 : 3); i++) {
    const t0 = performance.now();
    const name = `fresh-${i}`;
    const p = agent({ BENCH_AGENT_NAME: name }, consul.address);
    for (;;) {
      try {
        await mesh.callTool(name, "echo", { payload: "hi" }, { timeoutMs: 1_000 });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    starts.push(performance.now() - t0);
    await p;
  }
  starts.sort((a, b) => a - b);
  discovery.push(["process start → first served call (median)", `${Math.round(starts[Math.floor(starts.length / 2)]!)} ms`]);

  const replicas = [await agent({ BENCH_AGENT_NAME: "pair" }, consul.address), await agent({ BENCH_AGENT_NAME: "pair" }, consul.address)];
  await waitFor(async () => (await mesh.catalog.instances("pair")).length === 2);
  let failed = 0;
  let calls = 0;
  let lastFailure = 0;
  let stop = false;
  const killAt = performance.now() + 500;
  const loops = Array.from({ length: 8 }, async () => {
    while (!stop) {
      try {
        await mesh.callTool("pair", "echo", { payload: "x" }, { timeoutMs: 3_000 });
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
  discovery.push([
    "SIGKILL of 1 of 2 replicas under load (8 loops, read-only tool)",
    `${calls} calls, ${failed} failed${failed ? `, last ${Math.round(lastFailure)} ms after the kill` : ""}`,
  ]);

  // 200 registered instances (20 agents × 10 replicas) with 10 tools each, in the real Consul.
  const many = await agent({ BENCH_AGENT_NAME: "many-0", BENCH_TOOLS: "10" }, consul.address);
  const manyEntry = (await consulClient.healthService("many-0")).value[0]!;
  const port = Number(new URL(many.url).port);
  for (let a = 1; a < 20; a++) {
    for (let r = 0; r < 10; r++) {
      await consulClient.registerService({
        id: `many-${a}-${r}`,
        name: `many-${a}`,
        address: "127.0.0.1",
        port,
        tags: ["mcp"],
        meta: manyEntry.meta,
      });
    }
  }
  for (let r = 1; r < 10; r++) {
    await consulClient.registerService({
      id: `many-0-x${r}`,
      name: "many-0",
      address: "127.0.0.1",
      port,
      tags: ["mcp"],
      meta: manyEntry.meta,
    });
  }
  const t0 = performance.now();
  const big = new MeshClient({ consul: consulClient, callerName: "bench-catalog", catalogMode: "all" });
  await big.start();
  await waitFor(() => big.catalog.agents().filter((a) => a.name.startsWith("many-") && a.tools.length >= 10).length === 20);
  const buildMs = performance.now() - t0;
  const instances = big.catalog.agents().reduce((n, a) => n + (a.name.startsWith("many-") ? a.instances.length : 0), 0);
  // What the catalog itself retains: the heap with it, minus the heap once it is closed
  // (so unrelated garbage from earlier sections does not count).
  const heapWith = await settledHeap();
  await big.close();
  const heapWithout = await settledHeap();
  discovery.push([`catalog of ${instances} instances × 10 tools (20 agents): build time`, `${Math.round(buildMs)} ms`]);
  discovery.push([
    `... heap the caller keeps for it`,
    global.gc ? `${((heapWith - heapWithout) / 2 ** 20).toFixed(1)} MiB` : "not measured (run with node --expose-gc)",
  ]);
  say(table(["measure", "result"], discovery));

  say();
  say(`Total bench time ${Math.round((Date.now() - started) / 1_000)} s.`);
  consulClient.destroy();
  const dir = here("./results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "latest.md"), `${out.join("\n")}\n`);
}

/** Heap in use after garbage collection has settled (needs --expose-gc). */
async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    global.gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage().heapUsed;
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error("bench: condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
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

try {
  await main();
} finally {
  await Promise.allSettled(children.reverse().map((c) => c.stop()));
}
process.exit(0);
