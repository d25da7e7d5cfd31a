import type { CallToolResult, Client } from "@modelcontextprotocol/client";
import { describe, expect, it } from "vitest";
import type { MeshCaller } from "../../src/client/meshCaller.ts";
import { MemoryState } from "../../src/state/sharedState.ts";
import { createHrDeps, hrAgent } from "../../servers/hr/agent.ts";
import { createFinanceDeps, financeAgent } from "../../servers/finance/agent.ts";
import { createKnowledgeDeps, knowledgeAgent } from "../../servers/knowledge/agent.ts";
import { connectInMemory } from "../helpers/inMemory.ts";

const hrServer = () => connectInMemory(hrAgent, createHrDeps(new MemoryState()));
const financeServer = () => connectInMemory(financeAgent, createFinanceDeps(new MemoryState(), hrMesh()));
const knowledgeServer = () => connectInMemory(knowledgeAgent, createKnowledgeDeps());

/** Finance's onward calls go to a real hr server over the in-memory pair. */
function hrMesh(): MeshCaller {
  const hr = hrServer();
  return {
    callTool: async (agent, tool, args) => {
      expect(agent).toBe("hr");
      return (await (await hr).callTool({ name: tool, arguments: args })) as CallToolResult;
    },
    close: async () => (await hr).close(),
  };
}

// Every tool, called with valid arguments: the SDK client checks structuredContent
// against the tool's output schema, so a drift between handler and schema fails here.
const CASES: Record<string, { server: () => Promise<Client>; calls: Record<string, Record<string, unknown>> }> = {
  hr: {
    server: hrServer,
    calls: {
      find_employee: { query: "engineering" },
      get_employee: { employee_id: "E1003" },
      list_direct_reports: { manager_id: "E1002" },
      get_leave_balance: { employee_id: "E1003" },
      get_leave_policy: {},
      request_leave: { employee_id: "E1003", leave_type: "sick", start_date: "2026-06-01", end_date: "2026-06-02", reason: "flu" },
      ask: { question: "Who does Bob Okafor report to?" },
    },
  },
  finance: {
    server: financeServer,
    calls: {
      get_budget: { department: "Marketing" },
      submit_expense: { employee_id: "E1004", department: "Marketing", category: "software", amount: 99.5, description: "Design tool" },
      list_expenses: { department: "Marketing" },
      compute_net_pay: { employee_id: "E1004" },
      run_payroll: { month: "2026-12", pace_ms: 0 },
      ask: { question: "What is the take-home pay of Bob Okafor?" },
    },
  },
  knowledge: {
    server: knowledgeServer,
    calls: {
      search_documents: { query: "incident postmortem" },
      get_document: { doc_id: "on-call" },
      list_documents: { category: "security" },
      ask: { question: "What is the on-call compensation?" },
    },
  },
};

describe.each(Object.keys(CASES))("%s server (in-memory pair)", (name) => {
  it("every tool answers valid arguments with structured content that satisfies its output schema", async () => {
    const client = await CASES[name]!.server();
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(Object.keys(CASES[name]!.calls).sort());
    for (const [tool, args] of Object.entries(CASES[name]!.calls)) {
      const r = (await client.callTool({ name: tool, arguments: args })) as CallToolResult;
      expect(r.isError, `${tool}: ${JSON.stringify(r.content)}`).toBeFalsy();
      expect(r.structuredContent, tool).toBeDefined();
      expect(r.content[0]?.type, tool).toBe("text");
    }
    await client.close();
  });
});

it("finance's run_payroll pays every employee HR knows, each through hr, and records the month's payroll", async () => {
  const state = new MemoryState();
  const client = await connectInMemory(financeAgent, createFinanceDeps(state, hrMesh()));
  const r = (await client.callTool({ name: "run_payroll", arguments: { month: "2026-11", pace_ms: 0 } })) as CallToolResult;
  const payroll = r.structuredContent as { employees: number; netTotal: number; lines: { employeeId: string; net: number }[] };
  expect(payroll.employees).toBe(51);
  expect(new Set(payroll.lines.map((l) => l.employeeId)).size).toBe(51);
  expect(payroll.lines.find((l) => l.employeeId === "E1001")?.net).toBe(15667.94);
  expect(payroll.netTotal).toBeCloseTo(
    payroll.lines.reduce((s, l) => s + l.net, 0),
    2,
  );
  expect(await state.get("payroll/2026-11")).toEqual(payroll);
  await client.close();
});

it("finance's ask resolves a name through hr and computes net pay", async () => {
  const client = await financeServer();
  const r = (await client.callTool({ name: "ask", arguments: { question: "What is the take-home pay of Bob Okafor?" } })) as CallToolResult;
  expect((r.structuredContent as { answer: string }).answer).toMatch(/^Bob Okafor \(E1002\) takes home [\d,.]+ USD a month: gross 16,000/);
  expect((r.structuredContent as { sources: string[] }).sources).toContain("hr:find_employee");
  await client.close();
});
