import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { HrDeps } from "../deps.ts";
import { EmployeeSchema, publicEmployee } from "./schemas.ts";

export function findEmployeeTool(deps: HrDeps): ToolSpec {
  return defineTool({
    name: "find_employee",
    title: "Find employees",
    description:
      "Search the employee directory. Every word must match the id, name, email, title, department or location (case-insensitive), e.g. 'chen', 'engineering berlin', 'payroll'.",
    input: z.object({
      query: z.string().trim().min(1, "query must not be empty").max(200).describe("Words to match"),
      limit: z.number().int().min(1).max(50).default(10).describe("Most results to return"),
    }),
    output: z.object({ count: z.number(), employees: z.array(EmployeeSchema) }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: ({ query, limit }) => {
      const employees = deps.directory.find(query, limit).map(publicEmployee);
      const text =
        employees.length === 0
          ? `No employee matches "${query}". Try a first or last name, an email, a department or an id like E1001.`
          : employees.map((e) => `${e.id} ${e.name} — ${e.title}, ${e.department} (${e.location})`).join("\n");
      return textAndStructured({ count: employees.length, employees }, text);
    },
  });
}
