import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { HrDeps } from "../deps.ts";
import { LEAVE_TYPES } from "../domain/types.ts";
import { LeaveBalanceSchema, employeeId, leaveType } from "./schemas.ts";

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "expected a date as YYYY-MM-DD");

export function requestLeaveTool(deps: HrDeps): ToolSpec {
  return defineTool({
    name: "request_leave",
    title: "Request leave",
    description:
      "Books leave for an employee from start_date to end_date (both included; only Monday-Friday count) and deducts it from the balance. " +
      "Each call books a new request: calling it twice books twice (or fails on the overlap).",
    input: z.object({
      employee_id: employeeId,
      leave_type: leaveType,
      start_date: day.describe("First day of leave, YYYY-MM-DD"),
      end_date: day.describe("Last day of leave, YYYY-MM-DD"),
      reason: z.string().max(500).optional().describe("Optional note for the manager"),
    }),
    output: z.object({
      request: z.object({
        requestId: z.string(),
        leaveType: z.enum(LEAVE_TYPES),
        startDate: z.string(),
        endDate: z.string(),
        workingDays: z.number(),
        reason: z.string().optional(),
        status: z.literal("approved"),
        createdAt: z.string(),
      }),
      balance: LeaveBalanceSchema,
    }),
    annotations: { readOnlyHint: false, idempotentHint: false, destructiveHint: false, openWorldHint: false },
    handler: async (args) => {
      const { request, balance } = await deps.leave.request({
        employeeId: args.employee_id,
        leaveType: args.leave_type,
        startDate: args.start_date,
        endDate: args.end_date,
        ...(args.reason ? { reason: args.reason } : {}),
      });
      const left = balance.balances[request.leaveType].remaining;
      return textAndStructured(
        { request, balance },
        `Booked ${request.workingDays} working day(s) of ${request.leaveType} leave for ${balance.name}, ${request.startDate} to ${request.endDate} (request ${request.requestId}). ${left} day(s) left.`,
      );
    },
  });
}
