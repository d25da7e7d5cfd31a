import * as z from "zod";
import { businessError, textAndStructured } from "../../../src/protocol/results.ts";
import { currentIdentity } from "../../../src/http/principal.ts";
import type { CallerIdentity } from "../../../src/http/identity.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { HrDeps } from "../deps.ts";
import { LEAVE_TYPES } from "../domain/types.ts";
import { LeaveBalanceSchema, employeeId, leaveType } from "./schemas.ts";

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "expected a date as YYYY-MM-DD");

/** The scope that lets an OAuth caller book leave for anyone (HR staff). */
export const HR_ADMIN_SCOPE = "hr:admin";
/** The access-token claim that names the calling employee (else `sub`, when it is an employee id). */
export const EMPLOYEE_CLAIM = "employee_id";

/** The employee an OAuth caller is, from its token's claims; undefined when it names none. */
export function employeeOf(identity: CallerIdentity): string | undefined {
  const id = identity.claims[EMPLOYEE_CLAIM] ?? identity.subject;
  return id && /^[Ee]\d{4}$/.test(id) ? id.toUpperCase() : undefined;
}

/**
 * Why an OAuth caller may not book leave for `employeeId`, or undefined when it may: its own
 * leave, or anyone's with hr:admin. Mesh members and static-token clients (no user identity)
 * book for whoever they name, as before: they act for the organisation.
 */
function bookingProblem(employeeId: string, identity: CallerIdentity | undefined): string | undefined {
  if (identity?.kind !== "oauth" || identity.scopes.includes(HR_ADMIN_SCOPE)) return undefined;
  const self = employeeOf(identity);
  if (!self)
    return `Your access token names no employee (claim ${EMPLOYEE_CLAIM}, or sub), so request_leave cannot book for you; booking for others needs the ${HR_ADMIN_SCOPE} scope.`;
  if (self !== employeeId.toUpperCase())
    return `You (${self}) may book leave only for yourself, not for ${employeeId.toUpperCase()}; booking for others needs the ${HR_ADMIN_SCOPE} scope.`;
  return undefined;
}

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
      // The caller the gateway vouches for (a signed identity), not whoever the arguments name.
      const problem = bookingProblem(args.employee_id, currentIdentity());
      if (problem) return businessError(problem);
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
