import { readFileSync } from "node:fs";
import { askTool } from "../../src/agent/askTool.ts";
import type { ToolSpec } from "../../src/agent/tools.ts";
import { defineAgent } from "../../src/agent/definition.ts";
import type { Vocabulary, VocabularyEntry } from "../../src/agent/vocabulary.ts";
import type { SharedState } from "../../src/state/sharedState.ts";
import type { HrDeps } from "./deps.ts";
import { HrAnswerer } from "./domain/answer.ts";
import { Directory } from "./domain/directory.ts";
import { LeaveService } from "./domain/leave.ts";
import type { HrData } from "./domain/types.ts";
import { findEmployeeTool } from "./tools/findEmployee.ts";
import { getEmployeeTool } from "./tools/getEmployee.ts";
import { getLeaveBalanceTool } from "./tools/getLeaveBalance.ts";
import { getLeavePolicyTool } from "./tools/getLeavePolicy.ts";
import { listDirectReportsTool } from "./tools/listDirectReports.ts";
import { requestLeaveTool } from "./tools/requestLeave.ts";

export const HR_VERSION = "1.0.0";

/** The shipped sample data: 51 employees, org chart, leave entitlements and policies. */
export function loadHrData(): HrData {
  return JSON.parse(readFileSync(new URL("./data/employees.json", import.meta.url), "utf8")) as HrData;
}

export function createHrDeps(state: SharedState, data: HrData = loadHrData()): HrDeps {
  const directory = new Directory(data.employees);
  const leave = new LeaveService(directory, data, state);
  return { directory, leave, answerer: new HrAnswerer(directory, leave) };
}

/** The HR agent's tools, independent of transport (built once per process). */
export function hrTools(deps: HrDeps): ToolSpec[] {
  return [
    findEmployeeTool(deps),
    getEmployeeTool(deps),
    listDirectReportsTool(deps),
    getLeaveBalanceTool(deps),
    getLeavePolicyTool(deps),
    requestLeaveTool(deps),
    askTool(
      "hr",
      "employees and the directory (names, emails, job titles, departments, offices, hire dates), managers, direct reports, teams and the org chart, headcount, leave balances (vacation, sick, personal and parental days remaining), booking time off, and leave policies",
      (q) => deps.answerer.answer(q),
      [
        "Who does Ines Silva report to?",
        "How many sick days has E1007 used?",
        "Who reports to Leo Rossi?",
        "Where does Wei Zhang work?",
        "When did Omar Farouk join the company?",
        "Book personal leave for E1012 on 2026-12-04",
      ],
    ),
  ];
}

export const hrAgent = defineAgent<HrDeps>({
  name: "hr",
  version: HR_VERSION,
  description: "Human resources: employee directory, org chart and managers, leave balances, leave requests and leave policies.",
  intents: ["employees", "org-chart", "leave", "vacation", "policies"],
  createDeps: (runtime) => createHrDeps(runtime.state),
  instructions: "Employee directory, org chart, leave balances and leave policies. Use find_employee to turn a name into an id.",
  tools: hrTools,
  vocabulary: (deps) => hrVocabulary(deps.directory.all()),
});

/** Employees (with their first name when no one else has it) and departments, for planners. */
export function hrVocabulary(employees: readonly { id: string; name: string; department: string }[]): Vocabulary {
  const firsts = new Map<string, number>();
  for (const e of employees) firsts.set(e.name.split(" ")[0]!, (firsts.get(e.name.split(" ")[0]!) ?? 0) + 1);
  const people: VocabularyEntry[] = employees.map((e) => {
    const first = e.name.split(" ")[0]!;
    return { type: "employee", id: e.id, name: e.name, ...(firsts.get(first) === 1 ? { aliases: [first] } : {}) };
  });
  const departments = [...new Set(employees.map((e) => e.department))].sort();
  return { entries: [...people, ...departments.map((d) => ({ type: "department", id: d, name: d }))] };
}
