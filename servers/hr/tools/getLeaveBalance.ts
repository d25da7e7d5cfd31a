import { textAndStructured } from "../../../src/protocol/results.ts";
import * as z from "zod";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { HrDeps } from "../deps.ts";
import { LeaveBalanceSchema, employeeId } from "./schemas.ts";

export function getLeaveBalanceTool(deps: HrDeps): ToolSpec {
  return defineTool({
    name: "get_leave_balance",
    title: "Leave balance",
    description:
      "Entitlement, used and remaining days of every leave type (vacation, sick, personal, parental) for one employee this year.",
    input: z.object({ employee_id: employeeId }),
    output: LeaveBalanceSchema,
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: async ({ employee_id }) => {
      const b = await deps.leave.balance(employee_id);
      const lines = Object.entries(b.balances).map(([t, l]) => `${t}: ${l.remaining} of ${l.entitlement} days left`);
      return textAndStructured({ ...b }, `${b.name} (${b.employeeId}), ${b.year}:\n${lines.join("\n")}`);
    },
  });
}
