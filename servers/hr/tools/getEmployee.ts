import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured, toolResult } from "../../../src/protocol/results.ts";
import type { HrDeps } from "../deps.ts";
import { EmployeeSchema, employeeId, publicEmployee } from "./schemas.ts";

export function registerGetEmployee(server: McpServer, deps: HrDeps): void {
  server.registerTool(
    "get_employee",
    {
      title: "Get an employee",
      description: "The directory record of one employee by id: title, department, manager, location, hire date and salary.",
      inputSchema: { employee_id: employeeId },
      outputSchema: {
        employee: EmployeeSchema,
        manager: z.object({ id: z.string(), name: z.string() }).optional().describe("Absent for the top of the org chart"),
      },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ employee_id }) =>
      toolResult(() => {
        const employee = publicEmployee(deps.directory.get(employee_id));
        const m = deps.directory.manager(employee.id);
        const manager = m ? { id: m.id, name: m.name } : undefined;
        return textAndStructured(
          { employee, ...(manager ? { manager } : {}) },
          `${employee.name} (${employee.id}) is ${employee.title} in ${employee.department}, based in ${employee.location}` +
            `${manager ? `, reporting to ${manager.name} (${manager.id})` : ""}. Hired ${employee.hireDate}.`,
        );
      }),
  );
}
