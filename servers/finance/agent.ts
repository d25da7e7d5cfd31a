import { readFileSync } from "node:fs";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createMcpServer } from "../../src/agent/mcpServer.ts";
import { registerAskTool } from "../../src/agent/askTool.ts";
import { defineAgent } from "../../src/agent/definition.ts";
import type { MeshCaller } from "../../src/client/meshCaller.ts";
import type { SharedState } from "../../src/state/sharedState.ts";
import type { FinanceDeps } from "./deps.ts";
import { FinanceAnswerer } from "./domain/answer.ts";
import { BudgetBook } from "./domain/budgets.ts";
import { HrLookup } from "./domain/hrLookup.ts";
import { PayrollCalculator } from "./domain/payroll.ts";
import type { FinanceData } from "./domain/types.ts";
import { registerComputeNetPay } from "./tools/computeNetPay.ts";
import { registerGetBudget } from "./tools/getBudget.ts";
import { registerListExpenses } from "./tools/listExpenses.ts";
import { registerSubmitExpense } from "./tools/submitExpense.ts";

export const FINANCE_VERSION = "1.0.0";

export function loadFinanceData(): FinanceData {
  return JSON.parse(readFileSync(new URL("./data/finance.json", import.meta.url), "utf8")) as FinanceData;
}

export function createFinanceDeps(state: SharedState, mesh: MeshCaller, data: FinanceData = loadFinanceData()): FinanceDeps {
  const budgets = new BudgetBook(data, state);
  const payroll = new PayrollCalculator(data);
  const hr = new HrLookup(mesh);
  return { budgets, payroll, hr, answerer: new FinanceAnswerer(budgets, payroll, hr) };
}

/** The finance agent's MCP server, independent of transport. */
export function createFinanceServer(deps: FinanceDeps): McpServer {
  const server = createMcpServer(
    { name: "toolmesh-finance", title: "Finance agent", version: FINANCE_VERSION },
    { instructions: "Department budgets, expenses and payroll. compute_net_pay asks the HR agent for the employee's salary." },
  );
  registerGetBudget(server, deps);
  registerSubmitExpense(server, deps);
  registerListExpenses(server, deps);
  registerComputeNetPay(server, deps);
  registerAskTool(
    server,
    "finance",
    "department budgets (allocated, spent, remaining), expenses and reimbursements (submit, list, per-item limits), payroll: gross and net pay, take-home salary, income tax, retirement and health insurance deductions",
    (q, signal) => deps.answerer.answer(q, signal),
    [
      "How much budget does Marketing have left?",
      "What is the expense limit for meals?",
      "Claim 120 USD of software for Finance",
      "What is the net monthly pay of E1004?",
      "How much tax does Tara Nowak pay?",
      "Which departments are close to their budget?",
    ],
  );
  return server;
}

export const financeAgent = defineAgent<FinanceDeps>({
  name: "finance",
  version: FINANCE_VERSION,
  description: "Finance: department budgets, expense submission and limits, payroll and net pay (asks HR for salaries).",
  intents: ["budgets", "expenses", "payroll", "net-pay"],
  createDeps: (runtime) => createFinanceDeps(runtime.state, runtime.mesh),
  createServer: createFinanceServer,
});
