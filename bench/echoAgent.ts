#!/usr/bin/env node
// The benchmark's agent, built with the kit: `echo` returns its payload (read-only), and
// `forward` calls another agent's echo through the mesh (the router → worker hop).
import * as z from "zod";
import { defineAgent, type AgentRuntime } from "../src/agent/definition.ts";
import { agentMain } from "../src/agent/main.ts";
import { defineTool, type ToolSpec } from "../src/agent/tools.ts";

const name = process.env["BENCH_AGENT_NAME"] ?? "echo";
const tools = Number(process.env["BENCH_TOOLS"] ?? 1);

export const echoAgent = defineAgent<AgentRuntime>({
  name,
  version: "0.0.1",
  description: "Benchmark agent: echoes its payload.",
  intents: ["bench"],
  createDeps: (runtime) => runtime,
  tools: (runtime) => {
    const specs: ToolSpec[] = [
      defineTool({
        name: "echo",
        description: "Returns the payload.",
        input: z.object({ payload: z.string() }),
        annotations: { readOnlyHint: true },
        handler: ({ payload }) => ({ content: [{ type: "text", text: payload }] }),
      }),
      defineTool({
        name: "forward",
        description: "Sends the payload to `to`.echo through the mesh and returns its answer.",
        input: z.object({ to: z.string(), payload: z.string() }),
        annotations: { readOnlyHint: true },
        handler: ({ to, payload }) => runtime.mesh.callTool(to, "echo", { payload }),
      }),
    ];
    // Extra tools, for catalog-size benchmarks.
    for (let i = 2; i < tools; i++) {
      specs.push(
        defineTool({
          name: `tool_${i}`,
          description: `Filler tool ${i}.`,
          input: z.object({ x: z.number() }),
          handler: ({ x }) => ({ content: [{ type: "text", text: String(x) }] }),
        }),
      );
    }
    return specs;
  },
});

if (import.meta.url === `file://${process.argv[1]}`) await agentMain(echoAgent);
