#!/usr/bin/env node
// The HR agent as a process: `node servers/hr/main.ts --port 7101` (HTTP, registers in
// Consul) or `node servers/hr/main.ts --stdio` (for an MCP client that spawns it).
import { agentMain } from "../../src/agent/main.ts";
import { hrAgent } from "./agent.ts";

await agentMain(hrAgent);
