import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import type { HrDeps } from "../deps.ts";
import { LEAVE_TYPES } from "../domain/types.ts";
import { leaveType } from "./schemas.ts";

const PolicySchema = z.object({
  leaveType: z.enum(LEAVE_TYPES),
  title: z.string(),
  daysPerYear: z.number(),
  maxConsecutiveDays: z.number(),
  summary: z.string(),
});

export function registerGetLeavePolicy(server: McpServer, deps: HrDeps): void {
  server.registerTool(
    "get_leave_policy",
    {
      title: "Leave policy",
      description: "The company's leave policy for one leave type, or for all of them when leave_type is omitted.",
      inputSchema: { leave_type: leaveType.optional() },
      outputSchema: { policies: z.array(PolicySchema) },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ leave_type }) => {
      const all = deps.leave.policies();
      const types = leave_type ? [leave_type] : LEAVE_TYPES;
      const policies = types.map((t) => ({
        leaveType: t,
        title: all[t].title,
        daysPerYear: all[t].daysPerYear,
        maxConsecutiveDays: all[t].maxConsecutiveDays,
        summary: all[t].summary,
      }));
      return textAndStructured({ policies }, policies.map((p) => `${p.title}: ${p.summary}`).join("\n\n"));
    },
  );
}
