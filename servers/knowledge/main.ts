#!/usr/bin/env node
// The knowledge agent as a process (HTTP + Consul registration, or --stdio).
import { agentMain } from "../../src/agent/main.ts";
import { knowledgeAgent } from "./agent.ts";

await agentMain(knowledgeAgent);
