import { fileURLToPath } from "node:url";
import { Client, type CallToolResult } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
let consul: TestConsul;
let hr: TestAgent;

beforeAll(async () => {
  consul = await startTestConsul();
  hr = await spawnAgent("hr", consul.address);
  await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 1, {
    timeoutMs: 3_000,
    what: "hr passing",
  });
});
afterAll(async () => {
  await hr.process.stop();
  await consul.stop();
});

/** Spawns an agent the way Claude Desktop or VS Code does: a child process speaking MCP on stdio. */
async function spawnStdio(
  args: string[],
  env: Record<string, string> = {},
  era: "auto" | "legacy" = "auto",
): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args,
    cwd: root,
    env: { ...(process.env as Record<string, string>), ...env },
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const client = new Client({ name: "stdio-test", version: "1" }, { versionNegotiation: { mode: era } });
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

it.each([
  ["2026-07-28", "auto", "modern"],
  ["2025-11-25", "legacy", "legacy"],
] as const)("servers/hr/main.ts --stdio serves a real MCP client (%s), with logs on stderr only", async (_revision, mode, era) => {
  const { client, stderr } = await spawnStdio(["servers/hr/main.ts", "--stdio"], {}, mode);
  expect(client.getProtocolEra()).toBe(era);
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name)).toContain("request_leave");
  const r = (await client.callTool({ name: "list_direct_reports", arguments: { manager_id: "E1001" } })) as CallToolResult;
  expect(r.isError).toBeFalsy();
  expect((r.structuredContent as { reports: unknown[] }).reports.length).toBe(7);
  await client.close();
  // Everything on stderr is a JSON log line (stdout carried only the protocol, or the client would have failed).
  const lines = stderr().trim().split("\n").filter(Boolean);
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  expect(stderr()).toContain("agent ready on stdio");
});

it("exits 0 when the client closes stdin", async () => {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, ["servers/knowledge/main.ts", "--stdio"], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve) => child.stderr.on("data", () => stderr.includes("agent ready") && resolve()));
  child.stdin.end();
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  expect(code).toBe(0);
  expect(stderr).not.toMatch(/unsettled top-level await|Exception|Maximum call stack/);
  expect(stderr).toContain("agent ready on stdio");
});

it("mesh serve knowledge --stdio works the same through the CLI", async () => {
  const { client } = await spawnStdio(["orchestrator/cli/main.ts", "serve", "knowledge", "--stdio"]);
  const r = (await client.callTool({ name: "ask", arguments: { question: "How many sick days do I get?" } })) as CallToolResult;
  expect(r.structuredContent).toMatchObject({ agent: "knowledge", sources: ["docs/sick-leave.md"] });
  await client.close();
});

it("finance on stdio still reaches hr through Consul discovery", async () => {
  const { client } = await spawnStdio(["servers/finance/main.ts", "--stdio"], { CONSUL_HTTP_ADDR: consul.address });
  const r = (await client.callTool({ name: "compute_net_pay", arguments: { employee_id: "E1002" } })) as CallToolResult;
  expect(r.isError).toBeFalsy();
  expect(r.structuredContent).toMatchObject({ employeeId: "E1002", name: "Bob Okafor", source: { agent: "hr", tool: "get_employee" } });
  await client.close();
});
