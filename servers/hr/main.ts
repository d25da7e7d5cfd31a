#!/usr/bin/env node
// The HR agent as a process: `node servers/hr/main.ts --port 7101` (HTTP, registers in
// Consul) or `node servers/hr/main.ts --stdio` (for an MCP client that spawns it).
import { enableCompileCache } from "node:module";

// Reuse compiled code across starts (Node ≥ 22.1): a new replica serves sooner.
enableCompileCache?.();
const { agentMain } = await import("../../src/agent/main.ts");
const { hrAgent } = await import("./agent.ts");
await agentMain(hrAgent);
