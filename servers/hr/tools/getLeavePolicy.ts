import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
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

export function getLeavePolicyTool(deps: HrDeps): ToolSpec {
  return defineTool({
    name: "get_leave_policy",
    title: "Leave policy",
    description: "The company's leave policy for one leave type, or for all of them when leave_type is omitted.",
    input: z.object({ leave_type: leaveType.optional() }),
    output: z.object({ policies: z.array(PolicySchema) }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: ({ leave_type }) => {
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
  });
}
