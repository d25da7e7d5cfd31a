#!/usr/bin/env node
// The orchestrator agent as a process: `node orchestrator/agent/main.ts --port 7100` (or `mesh serve orchestrator`).
import { enableCompileCache } from "node:module";

// Reuse compiled code across starts (Node ≥ 22.1).
enableCompileCache?.();
const { agentMain } = await import("../../src/agent/main.ts");
const { orchestratorAgent } = await import("./agent.ts");
await agentMain(orchestratorAgent);
