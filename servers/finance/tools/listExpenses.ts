import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { FinanceDeps } from "../deps.ts";
import { ExpenseSchema } from "./submitExpense.ts";

export function listExpensesTool(deps: FinanceDeps): ToolSpec {
  return defineTool({
    name: "list_expenses",
    title: "Recent expenses",
    description: "The most recent expenses booked through the mesh against a department budget, newest first.",
    input: z.object({
      department: z.string().trim().min(1).max(100).describe("Department name"),
      limit: z.number().int().min(1).max(100).default(20).describe("Most expenses to return"),
    }),
    output: z.object({ department: z.string(), expenses: z.array(ExpenseSchema) }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: async ({ department, limit }) => {
      const dept = deps.budgets.department(department);
      const expenses = await deps.budgets.recent(dept, limit);
      const text =
        expenses.length === 0
          ? `No expenses booked against ${dept} through the mesh yet.`
          : expenses
              .map((e) => `${e.createdAt.slice(0, 10)} ${e.expenseId} ${e.amount} ${e.category} by ${e.employeeId}: ${e.description}`)
              .join("\n");
      return textAndStructured({ department: dept, expenses }, text);
    },
  });
}
