import { setTimeout as sleep } from "node:timers/promises";
import * as z from "zod";
import { defineTool, type ToolCall, type ToolSpec } from "../../../src/agent/tools.ts";
import { BusinessError, textAndStructured } from "../../../src/protocol/results.ts";
import type { FinanceDeps } from "../deps.ts";

/** Pause between employees, standing in for the per-employee work of a real payroll run. @default 2000 */
export const DEFAULT_PAYROLL_PACE_MS = 2_000;

const Line = z.object({
  employeeId: z.string(),
  name: z.string(),
  country: z.string(),
  currency: z.string(),
  gross: z.number(),
  net: z.number(),
});

/** Where a month's payroll is kept (shared state: Consul KV for a registered agent). */
export function payrollKey(month: string): string {
  return `payroll/${month}`;
}

/** `run_payroll`: a month's payroll from HR's records, one employee at a time (a task where the client supports them). */
export function runPayrollTool(deps: FinanceDeps): ToolSpec {
  return defineTool({
    name: "run_payroll",
    title: "Run payroll",
    description:
      "Runs a month's payroll: every employee's monthly net pay, computed from HR's records (asked through the mesh, one employee at a time), " +
      "then the payroll is recorded. Takes minutes; runs as a task for clients that support the Tasks extension (poll tasks/get). " +
      "Running a month again recomputes and replaces its payroll.",
    input: z.object({
      month: z
        .string()
        .regex(/^\d{4}-(0[1-9]|1[0-2])$/, "expected a month as YYYY-MM")
        .describe("Pay month, e.g. 2026-12"),
      pace_ms: z.number().int().min(0).max(60_000).optional().describe("Pause per employee in ms (default 2000)"),
    }),
    output: z.object({
      month: z.string(),
      employees: z.number(),
      grossTotal: z.number(),
      netTotal: z.number(),
      currency: z.string(),
      lines: z.array(Line),
      recordedAt: z.string(),
    }),
    annotations: { readOnlyHint: false, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    task: "optional",
    handler: async ({ month, pace_ms }, call) => {
      const ids = await payrollIds(deps, call.signal);
      const lines = await payLines(deps, ids, pace_ms ?? DEFAULT_PAYROLL_PACE_MS, call);
      const payroll = recordOf(month, lines);
      await deps.state.update(payrollKey(month), () => payroll);
      return textAndStructured(
        payroll,
        `Payroll ${month}: ${payroll.employees} employees, gross ${payroll.grossTotal} ${payroll.currency}, net ${payroll.netTotal} ${payroll.currency}; recorded.`,
      );
    },
  });
}

/** Who is on the payroll: HR's directory, department by department (ids sorted); none is a business error. */
async function payrollIds(deps: FinanceDeps, signal: AbortSignal): Promise<string[]> {
  const seen = new Map<string, string>();
  for (const department of deps.budgets.departments()) {
    for (const e of await deps.hr.find(department, signal, 50)) if (e.department === department) seen.set(e.id, e.name);
  }
  if (seen.size === 0) throw new BusinessError("HR returned no employees: nothing to pay.");
  return [...seen.keys()].sort();
}

/** Each employee's monthly pay, one at a time (HR asked for each), with progress and a pause between them. */
async function payLines(deps: FinanceDeps, ids: readonly string[], pace: number, call: ToolCall): Promise<z.infer<typeof Line>[]> {
  const lines: z.infer<typeof Line>[] = [];
  for (const [i, id] of ids.entries()) {
    call.signal.throwIfAborted();
    const employee = await deps.hr.employee(id, call.signal);
    const p = deps.payroll.compute(employee, "monthly");
    lines.push({ employeeId: p.employeeId, name: p.name, country: p.country, currency: p.currency, gross: p.gross, net: p.net });
    await call.progress(i + 1, ids.length, `${i + 1} of ${ids.length} employees paid (${p.name})`);
    if (pace > 0) await sleep(pace, undefined, { signal: call.signal });
  }
  return lines;
}

/** The month's payroll record: its lines and their totals (to the cent). */
function recordOf(month: string, lines: z.infer<typeof Line>[]) {
  const round2 = (n: number) => Math.round(n * 100) / 100;
  return {
    month,
    employees: lines.length,
    grossTotal: round2(lines.reduce((s, l) => s + l.gross, 0)),
    netTotal: round2(lines.reduce((s, l) => s + l.net, 0)),
    currency: lines[0]!.currency,
    lines,
    recordedAt: new Date().toISOString(),
  };
}
