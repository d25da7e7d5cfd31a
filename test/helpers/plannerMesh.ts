import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import type { AgentDefinition } from "../../src/agent/definition.ts";
import { vocabularyUri, type Vocabulary } from "../../src/agent/vocabulary.ts";
import { AGENTS } from "../../servers/index.ts";
import { MeshModel, type PlannerAgent } from "../../orchestrator/planner/model.ts";
import type { StepCaller } from "../../orchestrator/planner/run.ts";
import { connectInMemory, testRuntime } from "./inMemory.ts";

/**
 * The demo agents in memory, wired to each other (finance asks hr), seen as the planner sees
 * a live mesh: each agent's tool list and the vocabulary it publishes, read over MCP.
 */
export async function plannerMesh(): Promise<{ model: MeshModel; call: StepCaller; calls: string[]; close: () => Promise<void> }> {
  const clients: Record<string, Client> = {};
  const calls: string[] = [];
  const callTool = async (agent: string, tool: string, args: Record<string, unknown>): Promise<CallToolResult> => {
    calls.push(`${agent}.${tool}`);
    return (await clients[agent]!.callTool({ name: tool, arguments: args })) as CallToolResult;
  };
  const agents: PlannerAgent[] = [];
  for (const [name, def] of Object.entries(AGENTS)) {
    const agent = def as AgentDefinition<unknown>;
    const client = await connectInMemory(agent, await agent.createDeps(testRuntime({ callTool, close: async () => {} })));
    clients[name] = client;
    const read = await client.readResource({ uri: vocabularyUri(name) });
    const vocabulary = JSON.parse((read.contents[0] as { text: string }).text) as Vocabulary;
    agents.push({
      name,
      description: def.description,
      tags: ["mcp", ...def.intents],
      tools: (await client.listTools()).tools,
      vocabulary: vocabulary.entries,
    });
  }
  return {
    model: new MeshModel(agents),
    call: async (step, args) => ({ result: await callTool(step.agent, step.tool, args), instance: `${step.agent}-mem` }),
    calls,
    close: async () => {
      await Promise.all(Object.values(clients).map((c) => c.close()));
    },
  };
}
