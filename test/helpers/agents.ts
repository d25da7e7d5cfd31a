import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AgentProcess, type ReadyInfo } from "../../orchestrator/up/agentProcess.ts";

export interface TestAgent extends ReadyInfo {
  process: AgentProcess;
  logFile: string;
  /** Parsed JSON log lines written so far. */
  logs(): Record<string, unknown>[];
}

const logDir = mkdtempSync(join(tmpdir(), "toolmesh-test-"));
let seq = 0;

/** Spawns a real agent process (servers/<name>/main.ts or a fixture path) and waits until ready. */
export async function spawnAgent(
  agent: string,
  consul: string,
  options: { port?: number; args?: string[]; env?: NodeJS.ProcessEnv; readyMessage?: string } = {},
): Promise<TestAgent> {
  const label = `${agent.split("/").pop()!.replace(/\.ts$/, "")}-${++seq}`;
  const logFile = join(logDir, `${label}.log`);
  const proc = new AgentProcess({
    agent,
    label,
    port: options.port ?? 0,
    consul,
    logFile,
    extraArgs: options.args,
    env: options.env,
    readyMessage: options.readyMessage,
  });
  const ready = await proc.start();
  return {
    ...ready,
    process: proc,
    logFile,
    logs: () =>
      readFileSync(logFile, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A real MCP client over Streamable HTTP. */
export async function connectHttp(url: string, name = "toolmesh-test"): Promise<Client> {
  const client = new Client({ name, version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}
