import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured, toolResult } from "../../../src/protocol/results.ts";
import type { FinanceDeps } from "../deps.ts";
import { ExpenseSchema } from "./submitExpense.ts";

export function registerListExpenses(server: McpServer, deps: FinanceDeps): void {
  server.registerTool(
    "list_expenses",
    {
      title: "Recent expenses",
      description: "The most recent expenses booked through the mesh against a department budget, newest first.",
      inputSchema: {
        department: z.string().trim().min(1).max(100).describe("Department name"),
        limit: z.number().int().min(1).max(100).default(20).describe("Most expenses to return"),
      },
      outputSchema: { department: z.string(), expenses: z.array(ExpenseSchema) },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ department, limit }) =>
      toolResult(async () => {
        const dept = deps.budgets.department(department);
        const expenses = await deps.budgets.recent(dept, limit);
        const text =
          expenses.length === 0
            ? `No expenses booked against ${dept} through the mesh yet.`
            : expenses
                .map((e) => `${e.createdAt.slice(0, 10)} ${e.expenseId} ${e.amount} ${e.category} by ${e.employeeId}: ${e.description}`)
                .join("\n");
        return textAndStructured({ department: dept, expenses }, text);
      }),
  );
}
