// In-process memory measurements for bench/run.ts (run with node --expose-gc): the heap an
// idle 2025-11-25 session costs an agent's endpoint and the gateway's, each served from this
// process so garbage collection can be forced before each reading.
import type { AgentDefinition, AgentRuntime } from "../src/agent/definition.ts";
import { agentServing } from "../src/agent/server.ts";
import type { MeshClient } from "../src/client/meshClient.ts";
import { Gateway } from "../src/gateway/gateway.ts";
import { McpEndpoint } from "../src/mcp/endpoint.ts";
import { DEFAULT_MAX_BODY_BYTES, serveHttp } from "../src/http/server.ts";
import { silentLogger } from "../src/logger.ts";
import { MemoryState } from "../src/state/sharedState.ts";

/** Heap in use after garbage collection has settled. */
export async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    global.gc?.();
    await new Promise((r) => setTimeout(r, 30));
  }
  return process.memoryUsage().heapUsed;
}

/** Opens `count` idle 2025-11-25 sessions (initialize, initialized, one tools/list) and returns the heap each costs the server. */
async function perSession(url: string, count: number): Promise<number> {
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const open = async () => {
    const init = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "idle", version: "1" } },
      }),
    });
    await init.text();
    const session = { ...headers, "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-11-25" };
    await (
      await fetch(url, { method: "POST", headers: session, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })
    ).text();
    await (
      await fetch(url, { method: "POST", headers: session, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) })
    ).text();
  };
  await open(); // warm: first-use allocations are not a session's
  const before = await settledHeap();
  for (let i = 0; i < count; i++) await open();
  return ((await settledHeap()) - before) / count;
}

const runtime = (mesh: MeshClient): AgentRuntime => ({
  logger: silentLogger,
  consul: undefined,
  state: new MemoryState(),
  mesh,
  notify: { toolsChanged() {}, promptsChanged() {}, resourcesChanged() {}, resourceUpdated() {} },
  addTool() {},
});

/** Heap per idle 2025-11-25 session at an agent's endpoint (the kit's, for `def`). */
export async function agentSessionBytes<D>(def: AgentDefinition<D>, mesh: MeshClient, count: number): Promise<number> {
  const deps = await def.createDeps(runtime(mesh));
  const { serverFor, fastToolCalls } = agentServing({ def, deps, logger: silentLogger });
  const endpoint = new McpEndpoint({
    createServer: serverFor,
    ...(fastToolCalls ? { fastToolCalls } : {}),
    maxSessions: count + 10,
    maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  });
  const http = await serveHttp({ host: "127.0.0.1", port: 0, endpoint: () => endpoint, endpointsHint: "/mcp" });
  try {
    return await perSession(`${http.origin}/mcp`, count);
  } finally {
    await endpoint.close();
    await http.close();
  }
}

/** Heap per idle 2025-11-25 session at the gateway's whole-mesh endpoint. */
export async function gatewaySessionBytes(mesh: MeshClient, count: number): Promise<number> {
  const gateway = new Gateway({ mesh });
  const view = gateway.viewFor();
  const endpoint = new McpEndpoint({
    createServer: (era) => gateway.createServer(view, era),
    fastToolCalls: gateway.fastToolCalls(view),
    maxSessions: count + 10,
    maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  });
  gateway.attach(view, endpoint.notify);
  const http = await serveHttp({ host: "127.0.0.1", port: 0, endpoint: () => endpoint, endpointsHint: "/mcp" });
  try {
    return await perSession(`${http.origin}/mcp`, count);
  } finally {
    await endpoint.close();
    await http.close();
    gateway.close();
  }
}
