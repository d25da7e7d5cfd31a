import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { HrDeps } from "../deps.ts";
import { EmployeeSchema, employeeId, publicEmployee } from "./schemas.ts";

export function listDirectReportsTool(deps: HrDeps): ToolSpec {
  return defineTool({
    name: "list_direct_reports",
    title: "Direct reports",
    description: "The people who report directly to a manager, from the org chart.",
    input: z.object({ manager_id: employeeId.describe("Employee id of the manager, e.g. E1001") }),
    output: z.object({ manager: z.object({ id: z.string(), name: z.string(), title: z.string() }), reports: z.array(EmployeeSchema) }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: ({ manager_id }) => {
      const m = deps.directory.get(manager_id);
      const reports = deps.directory.directReports(m.id).map(publicEmployee);
      const text =
        reports.length === 0
          ? `${m.name} (${m.id}) has no direct reports.`
          : `${reports.length} people report to ${m.name} (${m.id}):\n${reports.map((r) => `${r.id} ${r.name} — ${r.title}`).join("\n")}`;
      return textAndStructured({ manager: { id: m.id, name: m.name, title: m.title }, reports }, text);
    },
  });
}
