import type { AgentDefinition } from "../src/agent/definition.ts";
import { financeAgent } from "./finance/agent.ts";
import { hrAgent } from "./hr/agent.ts";
import { knowledgeAgent } from "./knowledge/agent.ts";

/** Every specialist agent shipped in servers/, by name (what `mesh serve <name>` accepts). */
export const AGENTS: Readonly<Record<string, AgentDefinition<never>>> = Object.freeze({
  hr: hrAgent as AgentDefinition<never>,
  finance: financeAgent as AgentDefinition<never>,
  knowledge: knowledgeAgent as AgentDefinition<never>,
});
