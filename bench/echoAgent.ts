#!/usr/bin/env node
// The benchmark's agent, built with the kit: `echo` returns its payload (read-only), and
// `forward` calls another agent's echo through the mesh (the router → worker hop).
import { z } from "zod";
import { defineAgent, type AgentRuntime } from "../src/agent/definition.ts";
import { agentMain } from "../src/agent/main.ts";
import { createMcpServer } from "../src/agent/mcpServer.ts";

const name = process.env["BENCH_AGENT_NAME"] ?? "echo";
const tools = Number(process.env["BENCH_TOOLS"] ?? 1);

export const echoAgent = defineAgent<AgentRuntime>({
  name,
  version: "0.0.1",
  description: "Benchmark agent: echoes its payload.",
  intents: ["bench"],
  createDeps: (runtime) => runtime,
  createServer: (runtime) => {
    const server = createMcpServer({ name, version: "0.0.1" });
    server.registerTool(
      "echo",
      { description: "Returns the payload.", inputSchema: { payload: z.string() }, annotations: { readOnlyHint: true } },
      ({ payload }) => ({ content: [{ type: "text", text: payload }] }),
    );
    server.registerTool(
      "forward",
      {
        description: "Sends the payload to `to`.echo through the mesh and returns its answer.",
        inputSchema: { to: z.string(), payload: z.string() },
        annotations: { readOnlyHint: true },
      },
      async ({ to, payload }) => runtime.mesh.callTool(to, "echo", { payload }),
    );
    // Extra tools, for catalog-size benchmarks.
    for (let i = 2; i < tools; i++) {
      server.registerTool(`tool_${i}`, { description: `Filler tool ${i}.`, inputSchema: { x: z.number() } }, ({ x }) => ({
        content: [{ type: "text", text: String(x) }],
      }));
    }
    return server;
  },
});

if (import.meta.url === `file://${process.argv[1]}`) await agentMain(echoAgent);
