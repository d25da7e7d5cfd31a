// The memory section of `npm run bench`: what an idle session costs an agent and the gateway,
// and the gateway's heap with thousands of calls in flight.
import { request as undiciRequest, Agent as UndiciAgent } from "undici";
import { MeshClient } from "../src/client/meshClient.ts";
import { echoAgent } from "./echoAgent.ts";
import type { Bench } from "./harness.ts";
import { GATEWAY, PROBE, QUICK, waitFor } from "./harness.ts";
import { agentSessionBytes, gatewaySessionBytes } from "./memory.ts";
import { table } from "./lib.ts";

/** Measures the memory rows and prints their table. */
export async function memorySection(b: Bench): Promise<void> {
  b.say();
  b.say(`## Memory`);
  b.say();
  const memory: (string | number)[][] = [];
  // Idle 2025-11-25 sessions, served from this process so garbage collection can be forced.
  const idleSessions = QUICK ? 50 : 400;
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB each`;
  memory.push([
    `an idle 2025-11-25 session at an agent (${idleSessions} opened)`,
    kib(await agentSessionBytes(echoAgent, b.mesh, idleSessions)),
  ]);
  const gatewayMesh = new MeshClient({ consul: b.consulClient, callerName: "bench-gateway", catalogMode: "all" });
  await gatewayMesh.start();
  memory.push([
    `an idle 2025-11-25 session at the gateway (${idleSessions} opened)`,
    kib(await gatewaySessionBytes(gatewayMesh, idleSessions)),
  ]);
  await gatewayMesh.close();
  memory.push(await callsInFlight(b));
  b.say(table(["measure", "result"], memory));
}

/**
 * Calls in flight through the gateway: a slow tool, many calls at once, the gateway's heap
 * meanwhile. Each call holds a socket on both sides of the gateway: the count stays under
 * this machine's file limit.
 */
async function callsInFlight(b: Bench): Promise<string[]> {
  const inFlight = QUICK ? 500 : 5_000;
  await b.agent({ PROBE_NAME: "slow", MESH_MAX_CONCURRENT_CALLS: String(inFlight * 2) }, PROBE);
  const bigGateway = await b.agent(
    { MESH_MAX_CALLS_PER_INSTANCE: String(inFlight * 2), MESH_MAX_QUEUED_PER_INSTANCE: "0", MESH_LOG_LEVEL: "warn" },
    GATEWAY,
    "gateway ready",
  );
  const url = new URL("/agents/slow/mcp", bigGateway.url);
  await waitFor(async () => (await fetch(url, { method: "POST", body: "{}" })).status !== 404);
  const gwHealth = async () =>
    ((await (await fetch(new URL("/healthz", bigGateway.url))).json()) as { memory: { heapUsedBytes: number; rssBytes: number } }).memory;
  const idleHeap = (await gwHealth()).heapUsedBytes;
  const flood = new UndiciAgent({ connections: inFlight * 2, keepAliveTimeout: 5_000 });
  const slowCalls = Array.from({ length: inFlight }, (_, i) => slowCall(url, flood, i));
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
  await flood.close();
  const ok = settled.filter((r) => r.ok).length;
  const perCall = (peak.heapUsedBytes - idleHeap) / inFlight;
  return [
    `${inFlight} calls in flight through the gateway (a 6 s tool; ${ok} answered)`,
    `heap ${(peak.heapUsedBytes / 2 ** 20).toFixed(0)} MiB at peak (${(idleHeap / 2 ** 20).toFixed(0)} idle), about ${(perCall / 1024).toFixed(1)} KiB per call: 10,000 would take about ${((idleHeap + perCall * 10_000) / 2 ** 20).toFixed(0)} MiB`,
  ];
}

/** One 2026-07-28 call of the probe's 6 s sleep tool, straight through the gateway's passthrough. */
function slowCall(url: URL, dispatcher: UndiciAgent, id: number): Promise<{ ok: boolean }> {
  return undiciRequest(url, {
    method: "POST",
    dispatcher,
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
}
