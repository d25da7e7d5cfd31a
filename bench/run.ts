#!/usr/bin/env node
// `npm run bench`: the ladder of call paths from the HTTP floor (a node:http JSON echo) through
// the SDK pairs to toolmesh's caller and its gateway, replicas behind the caller and the
// gateway, the router → worker hop against AutoGen's distributed (gRPC) runtime, session
// placement, memory, discovery, and CPU profiles of the toolmesh paths, all measured in this
// one run on this machine. Prints Markdown tables and writes them to bench/results/latest.md
// (profiles: bench/results/profiles.md). BENCH_QUICK=1 shortens every measurement (a smoke
// run, one repetition).
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
import { AgentProcess } from "../orchestrator/launcher/agentProcess.ts";
import { MeshClient } from "../src/client/meshClient.ts";
import { rootContext } from "../src/context/meshContext.ts";
import { ConsulClient } from "../src/consul/client.ts";
import { resolveConsulBinary, startDevConsul } from "../src/consul/devAgent.ts";
import { request as undiciRequest, Agent as UndiciAgent } from "undici";
import { Session } from "node:inspector/promises";
import { cpuShare, topSelfTime } from "./cpu.ts";
import { echoAgent } from "./echoAgent.ts";
import { agentSessionBytes, gatewaySessionBytes, settledHeap } from "./memory.ts";
import { measure, ms, ratio, table, type Sample } from "./lib.ts";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const ECHO = here("./echoAgent.ts");
const PLAIN = here("./plainServer.ts");
const PLAIN_V2 = here("./plainServerV2.ts");
const RAW_ECHO = here("./rawEcho.ts");
const GATEWAY = here("../orchestrator/gateway/main.ts");
const PROBE = here("../test/fixtures/probeAgent.ts");
const QUICK = process.env["BENCH_QUICK"] === "1";
const LATENCY_CALLS = QUICK ? 200 : 2_000;
const THROUGHPUT_MS = QUICK ? 500 : 3_000;
/** Interleaved repetitions of every ladder point (medians and spread are over them). */
const REPS = QUICK ? 1 : 3;
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
  // Every process here talks to Consul from one IP; a caller watching every agent kind holds
  // one blocking query per kind, and the catalog section has 200 kinds: Consul's default of
  // 200 concurrent connections per client IP would refuse some (see docs/limits.md).
  const consul = await startDevConsul({
    bindAddress: bind,
    binary: consulBin,
    logFile: join(logDir, "consul.log"),
    hcl: "limits { http_max_conns_per_client = 2000 }",
  });
  children.push({ stop: () => consul.stop() });
  const consulClient = new ConsulClient({ address: consul.address });

  say(`# toolmesh benchmarks`);
  say();
  say(
    `Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.` +
      ` One client session per path; ${LATENCY_CALLS} calls at concurrency 1, ${THROUGHPUT_MS / 1_000} s per throughput point.`,
  );

  // ---- the ladder: call paths from the HTTP floor up ---------------------------------------------
  const floorUrl = await plainServer(RAW_ECHO);
  const plainUrl = await plainServer(PLAIN);
  const plainV2Url = await plainServer(PLAIN_V2);
  const echo = await agent({ BENCH_AGENT_NAME: "echo" }, consul.address);
  const gateway = await agent({}, consul.address, GATEWAY, "gateway ready");
  const gatewayPort = Number(new URL(gateway.url).port);
  // The gateway's two views, registered as toolmesh endpoints (tag "bench", not "mcp": the
  // gateway itself does not see them) so toolmesh's caller can call through them.
  const viaGateway = async (name: string, path: string) =>
    consulClient.registerService({
      id: `${name}-1`,
      name,
      address: "127.0.0.1",
      port: gatewayPort,
      tags: ["bench"],
      meta: { toolmesh_version: "bench", mcp_protocols: "2026-07-28", mcp_path: path },
    });
  await viaGateway("echo-gw", "/agents/echo/mcp");
  await viaGateway("mesh-gw", "/mcp");
  const mesh = new MeshClient({ consul: consulClient, callerName: "bench" });
  children.push({ stop: () => mesh.close() });
  const floorAgent = new UndiciAgent({ keepAliveTimeout: 30_000 });
  let floorId = 0;
  const floorCall = async (payload: string) => {
    const res = await undiciRequest(floorUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++floorId, method: "tools/call", params: { name: "echo", arguments: { payload } } }),
      dispatcher: floorAgent,
    });
    await res.body.json();
  };
  const echoCall = (c: { callTool(p: { name: string; arguments: Record<string, unknown> }): Promise<unknown> }) => (payload: string) =>
    c.callTool({ name: "echo", arguments: { payload } });
  const FLOOR = "undici → node:http JSON echo (the floor)";
  const V1_PAIR = "v1 SDK client → v1 SDK server";
  const V2_PAIR = "v2 SDK client → v2 SDK server (baseline)";
  const CALLER = "toolmesh caller → agent";
  const paths: { name: string; call: (payload: string) => Promise<unknown> }[] = [
    { name: FLOOR, call: floorCall },
    { name: V1_PAIR, call: echoCall(await v1Client(plainUrl)) },
    { name: V2_PAIR, call: echoCall(await v2Client(plainV2Url)) },
    { name: "v1 SDK client → toolmesh agent (2025-11-25)", call: echoCall(await v1Client(echo.url)) },
    { name: "v2 SDK client → toolmesh agent (2026-07-28)", call: echoCall(await v2Client(echo.url)) },
    { name: CALLER, call: (payload) => mesh.callTool("echo", "echo", { payload }) },
    { name: "toolmesh caller → gateway /agents/echo/mcp → agent", call: (payload) => mesh.callTool("echo-gw", "echo", { payload }) },
    { name: "toolmesh caller → gateway /mcp → agent", call: (payload) => mesh.callTool("mesh-gw", "echo__echo", { payload }) },
  ];
  const groups = [
    ["100 B", 100, 1],
    ["100 B", 100, 16],
    ["100 B", 100, 64],
    ["64 KB", 64 * 1024, 1],
    ["64 KB", 64 * 1024, 16],
    ["64 KB", 64 * 1024, 64],
  ] as const;
  const samples = new Map<string, Sample[]>();
  for (const [label, size, concurrency] of groups) {
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
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const summary = (key: string) => {
    const s = samples.get(key)!;
    return {
      p50: med(s.map((x) => x.p50)),
      p99: med(s.map((x) => x.p99)),
      rps: med(s.map((x) => x.rps)),
      min: Math.min(...s.map((x) => x.rps)),
      max: Math.max(...s.map((x) => x.rps)),
      errors: s.reduce((n, x) => n + x.errors, 0),
    };
  };
  say();
  say(`## Tool-call latency and throughput: the ladder`);
  say();
  say(
    `Medians of ${REPS} interleaved repetition${REPS > 1 ? "s" : ""} (spread: the lowest and highest calls/s). Ratios are throughput against the v2 SDK pair (the baseline), the v1 pair and the floor in the same row group, and p50 against the v2 pair.`,
  );
  say();
  const ladder: (string | number)[][] = [];
  for (const [label, , concurrency] of groups) {
    const g = (name: string) => summary(`${name}|${label}|${concurrency}`);
    const [v2, v1, floor] = [g(V2_PAIR), g(V1_PAIR), g(FLOOR)];
    for (const p of paths) {
      const s = g(p.name);
      ladder.push([
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
  say(
    table(
      ["path", "payload", "conc.", "p50 ms", "p99 ms", "calls/s", "spread", "× v2 pair", "× v1 pair", "× floor", "p50 × v2", "errors"],
      ladder,
    ),
  );

  // ---- replicas: one agent kind with 1, 2 and 4 replicas behind the caller and the gateway -------
  say();
  say(`## Replicas`);
  say();
  say(
    `Throughput of one agent kind (the echo tool, 100 B, concurrency 64) with 1, 2 and 4 replicas, and where the CPU went (share of one core per process group; this machine has ${cpus().length} cores).`,
  );
  say();
  await viaGateway("rep-gw", "/agents/rep/mcp");
  const reps: Awaited<ReturnType<typeof agent>>[] = [];
  const replicaRows: (string | number)[][] = [];
  for (const count of [1, 2, 4]) {
    while (reps.length < count) reps.push(await agent({ BENCH_AGENT_NAME: "rep" }, consul.address));
    await waitFor(async () => (await mesh.catalog.instances("rep")).length === count);
    await new Promise((r) => setTimeout(r, 300)); // the gateway's catalog follows Consul
    for (const [path, call] of [
      ["toolmesh caller → replicas", () => mesh.callTool("rep", "echo", { payload: "x".repeat(100) })],
      ["toolmesh caller → gateway → replicas", () => mesh.callTool("rep-gw", "echo", { payload: "x".repeat(100) })],
    ] as const) {
      const { result, share } = await cpuShare(
        {
          bench: [process.pid],
          gateway: [gateway.process.pid!],
          agents: reps.map((r) => r.process.pid!),
          consul: consul.process.pid ? [consul.process.pid] : [],
        },
        () => measure(call, { concurrency: 64, warmup: QUICK ? 50 : 300, durationMs: THROUGHPUT_MS }),
      );
      const pct = (k: string) => `${Math.round((share[k] ?? 0) * 100)}%`;
      replicaRows.push([
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
  say(table(["path", "replicas", "calls/s", "p50 ms", "CPU: caller", "CPU: gateway", "CPU: agents", "CPU: Consul", "errors"], replicaRows));

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

  // ---- memory ------------------------------------------------------------------------------------
  say();
  say(`## Memory`);
  say();
  const memory: (string | number)[][] = [];
  // Idle 2025-11-25 sessions, served from this process so garbage collection can be forced.
  const idleSessions = QUICK ? 50 : 400;
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB each`;
  memory.push([
    `an idle 2025-11-25 session at an agent (${idleSessions} opened)`,
    kib(await agentSessionBytes(echoAgent, mesh, idleSessions)),
  ]);
  const gatewayMesh = new MeshClient({ consul: consulClient, callerName: "bench-gateway", catalogMode: "all" });
  await gatewayMesh.start();
  memory.push([
    `an idle 2025-11-25 session at the gateway (${idleSessions} opened)`,
    kib(await gatewaySessionBytes(gatewayMesh, idleSessions)),
  ]);
  await gatewayMesh.close();
  // Calls in flight through the gateway: a slow tool, many calls at once, the gateway's heap meanwhile.
  // Each call holds a socket on both sides of the gateway: the count stays under this machine's file limit.
  const inFlight = QUICK ? 500 : 5_000;
  const slowEnv = { PROBE_NAME: "slow", MESH_MAX_CONCURRENT_CALLS: String(inFlight * 2) };
  await agent(slowEnv, consul.address, PROBE);
  const bigGateway = await agent(
    { MESH_MAX_CALLS_PER_INSTANCE: String(inFlight * 2), MESH_MAX_QUEUED_PER_INSTANCE: "0", MESH_LOG_LEVEL: "warn" },
    consul.address,
    GATEWAY,
    "gateway ready",
  );
  await waitFor(async () => (await fetch(new URL("/agents/slow/mcp", bigGateway.url), { method: "POST", body: "{}" })).status !== 404);
  const gwHealth = async () =>
    ((await (await fetch(new URL("/healthz", bigGateway.url))).json()) as { memory: { heapUsedBytes: number; rssBytes: number } }).memory;
  const idleHeap = (await gwHealth()).heapUsedBytes;
  const flood = new UndiciAgent({ connections: inFlight * 2, keepAliveTimeout: 5_000 });
  const slowCall = (id: number) =>
    undiciRequest(new URL("/agents/slow/mcp", bigGateway.url), {
      method: "POST",
      dispatcher: flood,
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "sleep",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: {
          name: "sleep",
          arguments: { ms: 6_000 },
          _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} },
        },
      }),
    }).then(async (r) => ({ ok: r.statusCode === 200 && !(await r.body.text()).includes('"error"') }));
  const slowCalls = Array.from({ length: inFlight }, (_, i) => slowCall(i));
  let peak = { heapUsedBytes: 0, rssBytes: 0 };
  const sampling = setInterval(
    () =>
      void gwHealth()
        .then((m) => (peak = m.heapUsedBytes > peak.heapUsedBytes ? m : peak))
        .catch(() => undefined),
    250,
  );
  const settled = await Promise.all(slowCalls.map((c) => c.catch(() => ({ ok: false }))));
  clearInterval(sampling);
  const ok = settled.filter((r) => r.ok).length;
  const perCall = (peak.heapUsedBytes - idleHeap) / inFlight;
  memory.push([
    `${inFlight} calls in flight through the gateway (a 6 s tool; ${ok} answered)`,
    `heap ${(peak.heapUsedBytes / 2 ** 20).toFixed(0)} MiB at peak (${(idleHeap / 2 ** 20).toFixed(0)} idle), about ${(perCall / 1024).toFixed(1)} KiB per call: 10,000 would take about ${((idleHeap + perCall * 10_000) / 2 ** 20).toFixed(0)} MiB`,
  ]);
  await flood.close();
  say(table(["measure", "result"], memory));

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

  // 2,000 registered instances (200 agents × 10 replicas; QUICK: 200) with 10 tools each, in the real Consul.
  const many = await agent({ BENCH_AGENT_NAME: "many-0", BENCH_TOOLS: "10" }, consul.address);
  const manyEntry = (await consulClient.healthService("many-0")).value[0]!;
  const port = Number(new URL(many.url).port);
  const kinds = QUICK ? 20 : 200;
  for (let a = 1; a < kinds; a++) {
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
  await waitFor(() => big.catalog.agents().filter((a) => a.name.startsWith("many-") && a.tools.length >= 10).length === kinds, 60_000);
  const buildMs = performance.now() - t0;
  const instances = big.catalog.agents().reduce((n, a) => n + (a.name.startsWith("many-") ? a.instances.length : 0), 0);
  // What the catalog itself retains: the heap with it, minus the heap once it is closed
  // (so unrelated garbage from earlier sections does not count).
  const heapWith = await settledHeap();
  await big.close();
  const heapWithout = await settledHeap();
  discovery.push([`catalog of ${instances} instances × 10 tools (${kinds} agents): discovered and ready`, `${Math.round(buildMs)} ms`]);
  discovery.push([
    `... heap the caller keeps for it`,
    global.gc ? `${((heapWith - heapWithout) / 2 ** 20).toFixed(1)} MiB` : "not measured (run with node --expose-gc)",
  ]);
  say(table(["measure", "result"], discovery));

  // ---- CPU profiles of the toolmesh paths ----------------------------------------------------------
  const profDir = mkdtempSync(join(tmpdir(), "toolmesh-profiles-"));
  const profEnv = { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` };
  const profAgent = await agent({ BENCH_AGENT_NAME: "prof-echo", ...profEnv }, consul.address);
  const profGateway = await agent({ ...profEnv }, consul.address, GATEWAY, "gateway ready");
  await consulClient.registerService({
    id: "prof-gw-1",
    name: "prof-gw",
    address: "127.0.0.1",
    port: Number(new URL(profGateway.url).port),
    tags: ["bench"],
    meta: { toolmesh_version: "bench", mcp_protocols: "2026-07-28", mcp_path: "/agents/prof-echo/mcp" },
  });
  await waitFor(
    async () => (await fetch(new URL("/agents/prof-echo/mcp", profGateway.url), { method: "POST", body: "{}" })).status !== 404,
  );
  const inspector = new Session();
  inspector.connect();
  await inspector.post("Profiler.enable");
  const clientProfile = async (call: () => Promise<unknown>) => {
    await measure(call, { concurrency: 16, warmup: 200, durationMs: 200 });
    await inspector.post("Profiler.start");
    await measure(call, { concurrency: 16, warmup: 0, durationMs: QUICK ? 1_000 : 3_000 });
    return (await inspector.post("Profiler.stop")).profile as unknown as Parameters<typeof topSelfTime>[0];
  };
  const payload100 = "x".repeat(100);
  const callerSide = await clientProfile(() => mesh.callTool("prof-echo", "echo", { payload: payload100 }));
  const callerViaGateway = await clientProfile(() => mesh.callTool("prof-gw", "echo", { payload: payload100 }));
  inspector.disconnect();
  await profAgent.process.stop(5_000);
  await profGateway.process.stop(5_000);
  const { readdirSync, readFileSync } = await import("node:fs");
  const written = (pid: number | undefined) => {
    const file = readdirSync(profDir).find((f) => f.includes(`.${pid}.`));
    return file ? (JSON.parse(readFileSync(join(profDir, file), "utf8")) as Parameters<typeof topSelfTime>[0]) : undefined;
  };
  const profiles: [string, Parameters<typeof topSelfTime>[0] | undefined][] = [
    ["toolmesh caller → agent: the caller", callerSide],
    ["toolmesh caller → gateway → agent: the caller", callerViaGateway],
    ["the agent (serving both runs)", written(profAgent.process.pid)],
    ["the gateway (/agents/<name>/mcp)", written(profGateway.process.pid)],
  ];
  const profileMd = [
    `# CPU profiles of the toolmesh paths`,
    ``,
    `Written by \`npm run bench\` (${new Date().toISOString().slice(0, 10)}): 100 B echo calls at concurrency 16; top functions by self time, as a share of each process's busy time.`,
  ];
  for (const [name, profile] of profiles) {
    profileMd.push("", `## ${name}`, "");
    if (!profile) {
      profileMd.push("(no profile written)");
      continue;
    }
    profileMd.push(
      table(
        ["function", "self time"],
        topSelfTime(profile).map((r) => [r.fn, `${(r.share * 100).toFixed(1)}%`]),
      ),
    );
  }

  say();
  say(`Total bench time ${Math.round((Date.now() - started) / 1_000)} s.`);
  consulClient.destroy();
  const dir = here("./results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "latest.md"), `${out.join("\n")}\n`);
  writeFileSync(join(dir, "profiles.md"), `${profileMd.join("\n")}\n`);
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
