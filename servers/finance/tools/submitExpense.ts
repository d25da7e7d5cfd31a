import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { FinanceDeps } from "../deps.ts";
import { EXPENSE_CATEGORIES } from "../domain/types.ts";
import { BudgetSchema } from "./getBudget.ts";

export const ExpenseSchema = z.object({
  expenseId: z.string(),
  employeeId: z.string(),
  department: z.string(),
  category: z.enum(EXPENSE_CATEGORIES),
  amount: z.number(),
  description: z.string(),
  status: z.literal("approved"),
  createdAt: z.string(),
});

export function submitExpenseTool(deps: FinanceDeps): ToolSpec {
  return defineTool({
    name: "submit_expense",
    title: "Submit an expense",
    description:
      "Books an expense against a department budget. Refused when it exceeds the per-item limit of its category or the remaining budget. " +
      "Each call books a new expense: calling it twice books twice.",
    input: z.object({
      employee_id: z
        .string()
        .regex(/^[Ee]\d{4}$/, "expected an employee id like E1001")
        .describe("Who spent the money"),
      department: z.string().trim().min(1).max(100).describe("Budget to charge, e.g. Engineering"),
      category: z.enum(EXPENSE_CATEGORIES).describe("Expense category"),
      amount: z.number().positive("amount must be more than 0").max(1_000_000).describe("Amount in USD"),
      description: z.string().trim().min(1, "description must not be empty").max(500).describe("What it was for"),
    }),
    output: z.object({ expense: ExpenseSchema, budget: BudgetSchema }),
    annotations: { readOnlyHint: false, idempotentHint: false, destructiveHint: false, openWorldHint: false },
    handler: async (args) => {
      const { expense, budget } = await deps.budgets.submit({
        employeeId: args.employee_id,
        department: args.department,
        category: args.category,
        amount: args.amount,
        description: args.description,
      });
      return textAndStructured(
        { expense, budget },
        `Expense ${expense.expenseId} approved: ${expense.amount} ${budget.currency} (${expense.category}) charged to ${budget.department}; ${budget.remaining} remaining.`,
      );
    },
  });
}
