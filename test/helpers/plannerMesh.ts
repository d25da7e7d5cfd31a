import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { Client, type CallToolResult } from "@modelcontextprotocol/client";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { AgentDefinition } from "../../src/agent/definition.ts";
import { vocabularyUri, type Vocabulary, type VocabularyEntry } from "../../src/agent/vocabulary.ts";
import { AGENTS } from "../../servers/index.ts";
import { MeshModel, type PlannerAgent } from "../../orchestrator/agent/planner/model.ts";
import type { StepCaller } from "../../orchestrator/agent/planner/run.ts";
import { connectInMemory, testRuntime } from "./inMemory.ts";

/**
 * A third-party MCP server for the planner's tests: its mesh name and a factory for a fresh
 * server (an McpServer of either SDK line, or anything with `connect(transport)`).
 */
export interface ThirdPartyAgent {
  name: string;
  description?: string;
  createServer: () => { connect(transport: unknown): Promise<void> };
}

/**
 * Loads a third-party agent module: it exports `createServer()` (or a default export that is
 * one) and optionally `name` (default: the file name) and `description`.
 */
export async function thirdPartyAgent(path: string): Promise<ThirdPartyAgent> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
  const factory = (mod["createServer"] ?? mod["default"]) as ThirdPartyAgent["createServer"] | undefined;
  if (typeof factory !== "function") throw new Error(`${path} exports no createServer() (nor a default factory) returning an MCP server.`);
  const name =
    typeof mod["name"] === "string"
      ? mod["name"]
      : path
          .split("/")
          .pop()!
          .replace(/\.[cm]?[jt]s$/, "");
  return { name, createServer: factory, ...(typeof mod["description"] === "string" ? { description: mod["description"] } : {}) };
}

/**
 * The demo agents in memory, wired to each other (finance asks hr), seen as the planner sees
 * a live mesh: each agent's tool list and the vocabulary it publishes, read over MCP. Third-party
 * agents join as `mesh register` adds them: tools only, and a vocabulary if they publish one.
 */
export async function plannerMesh(
  options: { thirdParty?: readonly ThirdPartyAgent[] } = {},
): Promise<{ model: MeshModel; call: StepCaller; calls: string[]; close: () => Promise<void> }> {
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
    agents.push({
      name,
      description: def.description,
      tags: ["mcp", ...def.intents],
      tools: (await client.listTools()).tools,
      vocabulary: await readVocabulary(client, name),
    });
  }
  for (const third of options.thirdParty ?? []) {
    const [a, b] = InMemoryTransport.createLinkedPair();
    await third.createServer().connect(b);
    const client = new Client({ name: "planner-test", version: "1" });
    await client.connect(a);
    clients[third.name] = client;
    agents.push({
      name: third.name,
      ...(third.description ? { description: third.description } : {}),
      tags: ["mcp"],
      tools: (await client.listTools()).tools,
      vocabulary: await readVocabulary(client, third.name),
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

/** The agent's published vocabulary; none (most MCP servers) is an empty one. */
async function readVocabulary(client: Client, name: string): Promise<VocabularyEntry[]> {
  try {
    const read = await client.readResource({ uri: vocabularyUri(name) });
    return (JSON.parse((read.contents[0] as { text: string }).text) as Vocabulary).entries;
  } catch {
    return [];
  }
}
