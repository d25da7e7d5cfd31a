import { readFileSync } from "node:fs";
import { askTool } from "../../src/agent/askTool.ts";
import type { ToolSpec } from "../../src/agent/tools.ts";
import { defineAgent } from "../../src/agent/definition.ts";
import type { MeshCaller } from "../../src/client/meshCaller.ts";
import type { SharedState } from "../../src/state/sharedState.ts";
import type { FinanceDeps } from "./deps.ts";
import { FinanceAnswerer } from "./domain/answer.ts";
import { BudgetBook } from "./domain/budgets.ts";
import { HrLookup } from "./domain/hrLookup.ts";
import { PayrollCalculator } from "./domain/payroll.ts";
import type { FinanceData } from "./domain/types.ts";
import { computeNetPayTool } from "./tools/computeNetPay.ts";
import { getBudgetTool } from "./tools/getBudget.ts";
import { listExpensesTool } from "./tools/listExpenses.ts";
import { submitExpenseTool } from "./tools/submitExpense.ts";
import { runPayrollTool } from "./tools/runPayroll.ts";

export const FINANCE_VERSION = "1.0.0";

export function loadFinanceData(): FinanceData {
  return JSON.parse(readFileSync(new URL("./data/finance.json", import.meta.url), "utf8")) as FinanceData;
}

export function createFinanceDeps(state: SharedState, mesh: MeshCaller, data: FinanceData = loadFinanceData()): FinanceDeps {
  const budgets = new BudgetBook(data, state);
  const payroll = new PayrollCalculator(data);
  const hr = new HrLookup(mesh);
  return { budgets, payroll, hr, answerer: new FinanceAnswerer(budgets, payroll, hr), state };
}

/** The finance agent's tools, independent of transport (built once per process). */
export function financeTools(deps: FinanceDeps): ToolSpec[] {
  return [
    getBudgetTool(deps),
    submitExpenseTool(deps),
    listExpensesTool(deps),
    computeNetPayTool(deps),
    runPayrollTool(deps),
    askTool(
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
    ),
  ];
}

export const financeAgent = defineAgent<FinanceDeps>({
  name: "finance",
  version: FINANCE_VERSION,
  description: "Finance: department budgets, expense submission and limits, payroll and net pay (asks HR for salaries).",
  intents: ["budgets", "expenses", "payroll", "net-pay"],
  createDeps: (runtime) => createFinanceDeps(runtime.state, runtime.mesh),
  instructions: "Department budgets, expenses and payroll. compute_net_pay asks the HR agent for the employee's salary.",
  tools: financeTools,
  vocabulary: (deps) => ({ entries: deps.budgets.departments().map((d) => ({ type: "department", id: d, name: d })) }),
});
