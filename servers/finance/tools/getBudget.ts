import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured, toolResult } from "../../../src/protocol/results.ts";
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

export function registerGetBudget(server: McpServer, deps: FinanceDeps): void {
  server.registerTool(
    "get_budget",
    {
      title: "Department budget",
      description: `Allocated, spent and remaining operating budget of a department this fiscal year. Departments: ${deps.budgets.departments().join(", ")}.`,
      inputSchema: { department: z.string().trim().min(1).max(100).describe("Department name, e.g. Engineering") },
      outputSchema: BudgetSchema.shape,
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ department }) =>
      toolResult(async () => {
        const s = await deps.budgets.status(department);
        return textAndStructured(
          { ...s },
          `${s.department} ${s.fiscalYear}: ${s.spent} of ${s.allocated} ${s.currency} spent, ${s.remaining} remaining (${Math.round(s.utilisation * 100)}%).`,
        );
      }),
  );
}
