import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { HrDeps } from "../deps.ts";
import { EmployeeSchema, employeeId, publicEmployee } from "./schemas.ts";

export function getEmployeeTool(deps: HrDeps): ToolSpec {
  return defineTool({
    name: "get_employee",
    title: "Get an employee",
    description: "The directory record of one employee by id: title, department, manager, location, hire date and salary.",
    input: z.object({ employee_id: employeeId }),
    output: z.object({
      employee: EmployeeSchema,
      manager: z.object({ id: z.string(), name: z.string() }).optional().describe("Absent for the top of the org chart"),
    }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: ({ employee_id }) => {
      const employee = publicEmployee(deps.directory.get(employee_id));
      const m = deps.directory.manager(employee.id);
      const manager = m ? { id: m.id, name: m.name } : undefined;
      return textAndStructured(
        { employee, ...(manager ? { manager } : {}) },
        `${employee.name} (${employee.id}) is ${employee.title} in ${employee.department}, based in ${employee.location}` +
          `${manager ? `, reporting to ${manager.name} (${manager.id})` : ""}. Hired ${employee.hireDate}.`,
      );
    },
  });
}
