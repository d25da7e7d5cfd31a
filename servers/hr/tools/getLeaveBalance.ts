import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { textAndStructured, toolResult } from "../../../src/protocol/results.ts";
import type { HrDeps } from "../deps.ts";
import { LeaveBalanceSchema, employeeId } from "./schemas.ts";

export function registerGetLeaveBalance(server: McpServer, deps: HrDeps): void {
  server.registerTool(
    "get_leave_balance",
    {
      title: "Leave balance",
      description:
        "Entitlement, used and remaining days of every leave type (vacation, sick, personal, parental) for one employee this year.",
      inputSchema: { employee_id: employeeId },
      outputSchema: LeaveBalanceSchema.shape,
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ employee_id }) =>
      toolResult(async () => {
        const b = await deps.leave.balance(employee_id);
        const lines = Object.entries(b.balances).map(([t, l]) => `${t}: ${l.remaining} of ${l.entitlement} days left`);
        return textAndStructured({ ...b }, `${b.name} (${b.employeeId}), ${b.year}:\n${lines.join("\n")}`);
      }),
  );
}
