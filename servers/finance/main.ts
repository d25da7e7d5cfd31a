#!/usr/bin/env node
// The finance agent as a process (HTTP + Consul registration, or --stdio).
import { agentMain } from "../../src/agent/main.ts";
import { financeAgent } from "./agent.ts";

await agentMain(financeAgent);
