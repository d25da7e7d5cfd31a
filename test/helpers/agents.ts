import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AgentProcess, type ReadyInfo } from "../../orchestrator/launcher/agentProcess.ts";
import { eventually } from "./eventually.ts";

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

/** How many log records with message `msg` an agent has written so far. */
export function logCount(agent: TestAgent, msg: string): number {
  return agent.logs().filter((l) => l["msg"] === msg).length;
}

/**
 * Waits until the agent `which()` names (asked again on each try: a call's instance may not be
 * known yet) has logged `msg` more than `since` times, and returns it: for acting on a call in
 * flight once it runs (the probe logs "sleep started", "effect started"), not after a guess.
 */
export async function untilLogged(which: () => TestAgent | undefined, msg: string, since = 0): Promise<TestAgent> {
  const { value } = await eventually(
    () => {
      const agent = which();
      return agent && logCount(agent, msg) > since ? agent : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 20, what: `"${msg}" in an agent's log` },
  );
  return value;
}

export interface ConnectOptions {
  name?: string;
  /**
   * Which revision to speak: "modern" pins 2026-07-28 (no session, one POST per request),
   * "legacy" 2025-11-25 (initialize, a session), "auto" probes with server/discover.
   * @default "modern"
   */
  era?: "modern" | "legacy" | "auto";
  token?: string;
  /** Answer input_required results (elicitation, sampling) inside callTool. @default true */
  autoFulfill?: boolean;
}

/** A real MCP client (SDK v2) over Streamable HTTP. */
export async function connectHttp(url: string, options: ConnectOptions = {}): Promise<Client> {
  const era = options.era ?? "modern";
  const client = new Client(
    { name: options.name ?? "toolmesh-test", version: "1" },
    {
      versionNegotiation: { mode: era === "modern" ? { pin: "2026-07-28" } : era },
      ...(options.autoFulfill === false ? { inputRequired: { autoFulfill: false } } : {}),
    },
  );
  await client.connect(
    new StreamableHTTPClientTransport(
      new URL(url),
      options.token ? { requestInit: { headers: { Authorization: `Bearer ${options.token}` } } } : {},
    ),
  );
  return client;
}

/** A client on the maintenance line of the SDK (v1, `@modelcontextprotocol/sdk`): 2025-11-25 with a session. */
export async function connectV1(url: string, name = "toolmesh-test-v1", token?: string): Promise<V1Client> {
  const client = new V1Client({ name, version: "1" });
  await client.connect(new V1Transport(new URL(url), token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {}));
  return client;
}
