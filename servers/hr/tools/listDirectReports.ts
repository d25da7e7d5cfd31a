import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured, toolResult } from "../../../src/protocol/results.ts";
import type { HrDeps } from "../deps.ts";
import { EmployeeSchema, employeeId, publicEmployee } from "./schemas.ts";

export function registerListDirectReports(server: McpServer, deps: HrDeps): void {
  server.registerTool(
    "list_direct_reports",
    {
      title: "Direct reports",
      description: "The people who report directly to a manager, from the org chart.",
      inputSchema: { manager_id: employeeId.describe("Employee id of the manager, e.g. E1001") },
      outputSchema: { manager: z.object({ id: z.string(), name: z.string(), title: z.string() }), reports: z.array(EmployeeSchema) },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ manager_id }) =>
      toolResult(() => {
        const m = deps.directory.get(manager_id);
        const reports = deps.directory.directReports(m.id).map(publicEmployee);
        const text =
          reports.length === 0
            ? `${m.name} (${m.id}) has no direct reports.`
            : `${reports.length} people report to ${m.name} (${m.id}):\n${reports.map((r) => `${r.id} ${r.name} — ${r.title}`).join("\n")}`;
        return textAndStructured({ manager: { id: m.id, name: m.name, title: m.title }, reports }, text);
      }),
  );
}
