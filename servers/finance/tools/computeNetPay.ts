import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { FinanceDeps } from "../deps.ts";

export function computeNetPayTool(deps: FinanceDeps): ToolSpec {
  return defineTool({
    name: "compute_net_pay",
    title: "Compute net pay",
    description:
      "Net pay of an employee with its breakdown (income tax, retirement, health insurance). Looks the employee's salary and country up in the HR agent through the mesh.",
    input: z.object({
      employee_id: z
        .string()
        .regex(/^[Ee]\d{4}$/, "expected an employee id like E1001")
        .describe("Employee id, e.g. E1001"),
      period: z.enum(["monthly", "annual"]).default("monthly").describe("Pay period"),
    }),
    output: z.object({
      employeeId: z.string(),
      name: z.string(),
      country: z.string(),
      period: z.enum(["monthly", "annual"]),
      currency: z.string(),
      gross: z.number(),
      retirement: z.number(),
      incomeTax: z.number(),
      healthInsurance: z.number(),
      net: z.number(),
      effectiveTaxRate: z.number(),
      source: z.object({ agent: z.string(), tool: z.string() }),
    }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: async ({ employee_id, period }, call) => {
      const employee = await deps.hr.employee(employee_id, call.signal);
      const p = deps.payroll.compute(employee, period);
      return textAndStructured(
        { ...p, source: { agent: "hr", tool: "get_employee" } },
        `${p.name} (${p.employeeId}), ${period}: gross ${p.gross}, income tax ${p.incomeTax}, retirement ${p.retirement}, health insurance ${p.healthInsurance}, net ${p.net} ${p.currency}.`,
      );
    },
  });
}
