import { z } from "zod";
import { LEAVE_TYPES } from "../domain/types.ts";

export const employeeId = z
  .string()
  .regex(/^[Ee]\d{4}$/, "expected an employee id like E1001")
  .describe("Employee id, e.g. E1001");

export const leaveType = z.enum(LEAVE_TYPES).describe("Kind of leave");

export const EmployeeSchema = z.object({
  id: z.string(),
  name: z.string(),
  email: z.string(),
  title: z.string(),
  department: z.string(),
  /** Absent for the top of the org chart (no type unions: several LLM clients reject ["string","null"]). */
  managerId: z.string().optional(),
  location: z.string(),
  country: z.string(),
  hireDate: z.string(),
  employment: z.enum(["full-time", "part-time"]),
  annualSalary: z.number(),
  currency: z.string(),
  dependants: z.number().int(),
});

const line = z.object({ entitlement: z.number(), used: z.number(), remaining: z.number() });
export const LeaveBalanceSchema = z.object({
  employeeId: z.string(),
  name: z.string(),
  year: z.number(),
  balances: z.object({ vacation: line, sick: line, personal: line, parental: line }),
});

/** The public view of an employee (the shipped usage counters stay internal). */
export function publicEmployee<E extends { leaveUsed?: unknown; managerId: string | null }>(
  e: E,
): Omit<E, "leaveUsed" | "managerId"> & { managerId?: string } {
  const { leaveUsed: _omit, managerId, ...rest } = e;
  return managerId ? { ...rest, managerId } : rest;
}
