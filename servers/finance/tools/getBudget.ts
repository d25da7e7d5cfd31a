import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { FinanceDeps } from "../deps.ts";

export const BudgetSchema = z.object({
  department: z.string(),
  fiscalYear: z.number(),
  currency: z.string(),
  allocated: z.number(),
  spent: z.number(),
  remaining: z.number(),
  utilisation: z.number(),
});

export function getBudgetTool(deps: FinanceDeps): ToolSpec {
  return defineTool({
    name: "get_budget",
    title: "Department budget",
    description: `Allocated, spent and remaining operating budget of a department this fiscal year. Departments: ${deps.budgets.departments().join(", ")}.`,
    input: z.object({ department: z.string().trim().min(1).max(100).describe("Department name, e.g. Engineering") }),
    output: BudgetSchema,
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: async ({ department }) => {
      const s = await deps.budgets.status(department);
      return textAndStructured(
        { ...s },
        `${s.department} ${s.fiscalYear}: ${s.spent} of ${s.allocated} ${s.currency} spent, ${s.remaining} remaining (${Math.round(s.utilisation * 100)}%).`,
      );
    },
  });
}
