// Clients no one here wrote, from PyPI: the Python MCP SDK (v2 line, both ways it connects)
// and AutoGen's McpWorkbench (autogen-ext, on the Python SDK's v1 line), against an agent,
// the gateway's whole-mesh /mcp and its /agents/hr/mcp. Their virtualenvs are made once by
// scripts/pyenv.sh (cached outside the checkout).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));

let consul: TestConsul;
let hr: TestAgent;
let gateway: TestAgent;
const python: Record<"mcp" | "autogen", string> = { mcp: "", autogen: "" };

beforeAll(async () => {
  // The virtualenvs: made once per requirements file (about 10 s each), then reused.
  const venv = async (req: string) =>
    (await run("bash", ["scripts/pyenv.sh", `test/python/${req}`], { cwd: root, timeout: 300_000 })).stdout.trim();
  const [mcp, autogen] = await Promise.all([venv("requirements-mcp.txt"), venv("requirements-autogen.txt")]);
  Object.assign(python, { mcp, autogen });
  consul = await startTestConsul();
  hr = await spawnAgent("hr", consul.address);
  await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 1, {
    timeoutMs: 3_000,
    what: "hr passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
}, 600_000);
afterAll(async () => {
  await gateway?.process.stop(2_000);
  await hr?.process.stop(2_000);
  await consul?.stop();
});

const endpoints = () => [
  { label: "an agent", url: hr.url, tool: "get_leave_policy" },
  { label: "the gateway's /mcp", url: gateway.url, tool: "hr__get_leave_policy" },
  { label: "the gateway's /agents/hr/mcp", url: gateway.url.replace(/\/mcp$/, "/agents/hr/mcp"), tool: "get_leave_policy" },
];

async function client(
  interpreter: string,
  script: string,
  url: string,
  tool: string,
  args: Record<string, unknown> = { leave_type: "sick" },
): Promise<Record<string, unknown>[]> {
  const { stdout } = await run(interpreter, [`test/python/${script}`, url, tool, JSON.stringify(args)], {
    cwd: root,
    timeout: 60_000,
  });
  return stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.each(["an agent", "the gateway's /mcp", "the gateway's /agents/hr/mcp"])("%s", (label) => {
  it("the Python MCP SDK lists and calls tools, over 2026-07-28 (auto) and 2025-11-25 (legacy)", async () => {
    const e = endpoints().find((x) => x.label === label)!;
    const [auto, legacy] = await client(python.mcp, "python_sdk.py", e.url, e.tool);
    expect(auto).toMatchObject({ client: "python-mcp/auto", protocol: "2026-07-28", isError: false });
    expect(legacy).toMatchObject({ client: "python-mcp/legacy", protocol: "2025-11-25", isError: false });
    for (const r of [auto!, legacy!]) {
      expect(r["tools"]).toContain(e.tool);
      expect(r["structured"]).toMatchObject({ policies: [{ leaveType: "sick", daysPerYear: 10 }] });
    }
  });

  it("AutoGen's McpWorkbench lists and calls tools", async () => {
    const e = endpoints().find((x) => x.label === label)!;
    const [r] = await client(python.autogen, "autogen_workbench.py", e.url, e.tool);
    expect(r).toMatchObject({ client: "autogen-mcp-workbench", isError: false });
    expect(r!["tools"]).toContain(e.tool);
    expect(r!["text"]).toMatch(/Sick leave: 10 paid sick days per year/);
  });
});

it("AutoGen's McpWorkbench calls a task-capable tool through the gateway: its client declares no tasks, so the call answers synchronously", async () => {
  const finance = await spawnAgent("finance", consul.address);
  try {
    await eventually(async () => (await consul.client.healthService("finance", { passing: true })).value.length === 1, {
      timeoutMs: 5_000,
      what: "finance passing",
    });
    const [r] = await eventually(
      async () => {
        const out = await client(python.autogen, "autogen_workbench.py", gateway.url, "finance__run_payroll", {
          month: "2026-01",
          pace_ms: 0,
        });
        return (out[0]?.["tools"] as string[] | undefined)?.includes("finance__run_payroll") ? out : undefined;
      },
      { timeoutMs: 20_000, what: "finance's tools at the gateway" },
    ).then((x) => x.value!);
    expect(r).toMatchObject({ client: "autogen-mcp-workbench", isError: false });
    expect(r!["text"]).toMatch(/Payroll 2026-01: 51 employees/);
  } finally {
    await finance.process.stop(2_000);
  }
}, 120_000);
