#!/usr/bin/env node
// The finance agent as a process (HTTP + Consul registration, or --stdio).
import { enableCompileCache } from "node:module";

// Reuse compiled code across starts (Node ≥ 22.1): a new replica serves sooner.
enableCompileCache?.();
const { agentMain } = await import("../../src/agent/main.ts");
const { financeAgent } = await import("./agent.ts");
await agentMain(financeAgent);
