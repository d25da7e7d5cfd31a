import { randomUUID } from "node:crypto";
import { BusinessError } from "../../../src/protocol/results.ts";
import type { SharedState } from "../../../src/state/sharedState.ts";
import type { Directory } from "./directory.ts";
import { LEAVE_TYPES, type HrData, type LeavePolicy, type LeaveType } from "./types.ts";

export interface LeaveRequestRecord {
  requestId: string;
  leaveType: LeaveType;
  startDate: string;
  endDate: string;
  workingDays: number;
  reason?: string;
  status: "approved";
  createdAt: string;
}

/** What the shared state keeps per employee: requests booked through the agent. */
interface Ledger {
  requests: LeaveRequestRecord[];
}

export interface LeaveBalanceLine {
  entitlement: number;
  used: number;
  remaining: number;
}

export interface LeaveBalance {
  employeeId: string;
  name: string;
  year: number;
  balances: Record<LeaveType, LeaveBalanceLine>;
}

export interface LeaveRequestInput {
  employeeId: string;
  leaveType: LeaveType;
  startDate: string;
  endDate: string;
  reason?: string;
}

/**
 * Leave balances and bookings. Balances are the shipped usage plus every request booked
 * through any replica, kept in shared state and updated atomically, so two replicas can
 * never both spend the last day of a balance.
 */
export class LeaveService {
  private readonly directory: Directory;
  private readonly data: HrData;
  private readonly state: SharedState;

  constructor(directory: Directory, data: HrData, state: SharedState) {
    this.directory = directory;
    this.data = data;
    this.state = state;
  }

  policy(type: LeaveType): LeavePolicy {
    return this.data.policies[type];
  }

  policies(): Record<LeaveType, LeavePolicy> {
    return this.data.policies;
  }

  async balance(employeeId: string): Promise<LeaveBalance> {
    const employee = this.directory.get(employeeId);
    const ledger = (await this.state.get<Ledger>(key(employee.id))) ?? { requests: [] };
    return this.computeBalance(employee.id, ledger);
  }

  async request(input: LeaveRequestInput): Promise<{ request: LeaveRequestRecord; balance: LeaveBalance }> {
    const employee = this.directory.get(input.employeeId);
    const start = parseDay(input.startDate, "start_date");
    const end = parseDay(input.endDate, "end_date");
    if (end < start)
      throw new BusinessError(
        `end_date ${input.endDate} is before start_date ${input.startDate}; give the first and last day of the leave.`,
      );
    const year = this.data.leaveYear;
    if (start.getUTCFullYear() !== year || end.getUTCFullYear() !== year) {
      throw new BusinessError(
        `Only leave in ${year} can be booked now (got ${input.startDate} to ${input.endDate}); ${year + 1} balances open on 1 January ${year + 1}.`,
      );
    }
    const days = workingDaysBetween(start, end);
    if (days === 0)
      throw new BusinessError(`${input.startDate} to ${input.endDate} has no working days (Monday to Friday); nothing to book.`);
    const policy = this.data.policies[input.leaveType];
    if (days > policy.maxConsecutiveDays) {
      throw new BusinessError(
        `${policy.title} allows at most ${policy.maxConsecutiveDays} consecutive working days; this request has ${days}. Split it or talk to People Operations.`,
      );
    }

    let booked: LeaveRequestRecord | undefined;
    const ledger = await this.state.update<Ledger>(key(employee.id), (current) => {
      const cur = current ?? { requests: [] };
      const overlap = cur.requests.find((r) => !(r.endDate < input.startDate || r.startDate > input.endDate));
      if (overlap) {
        throw new BusinessError(
          `${employee.name} already has ${overlap.leaveType} leave booked from ${overlap.startDate} to ${overlap.endDate} (request ${overlap.requestId}), which overlaps this request.`,
        );
      }
      const line = this.computeBalance(employee.id, cur).balances[input.leaveType];
      if (days > line.remaining) {
        throw new BusinessError(
          `Not enough ${input.leaveType} leave: ${employee.name} (${employee.id}) has ${line.remaining} day(s) left in ${year} and asked for ${days}.`,
        );
      }
      booked = {
        requestId: `LR-${randomUUID().slice(0, 8)}`,
        leaveType: input.leaveType,
        startDate: input.startDate,
        endDate: input.endDate,
        workingDays: days,
        ...(input.reason ? { reason: input.reason } : {}),
        status: "approved",
        createdAt: new Date().toISOString(),
      };
      return { requests: [...cur.requests, booked] };
    });
    return { request: booked!, balance: this.computeBalance(employee.id, ledger) };
  }

  private computeBalance(employeeId: string, ledger: Ledger): LeaveBalance {
    const employee = this.directory.get(employeeId);
    const balances = {} as Record<LeaveType, LeaveBalanceLine>;
    for (const type of LEAVE_TYPES) {
      const entitlement = this.data.entitlements[type];
      const used = employee.leaveUsed[type] + ledger.requests.filter((r) => r.leaveType === type).reduce((s, r) => s + r.workingDays, 0);
      balances[type] = { entitlement, used, remaining: Math.max(0, entitlement - used) };
    }
    return { employeeId: employee.id, name: employee.name, year: this.data.leaveYear, balances };
  }
}

function key(employeeId: string): string {
  return `leave/${employeeId}`;
}

function parseDay(text: string, field: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (!d || d.toISOString().slice(0, 10) !== text) {
    throw new BusinessError(`${field} "${text}" is not a calendar date; expected YYYY-MM-DD, e.g. 2026-12-21.`);
  }
  return d;
}

/** Monday-to-Friday days from start to end, both included. */
export function workingDaysBetween(start: Date, end: Date): number {
  let days = 0;
  for (let t = start.getTime(); t <= end.getTime(); t += 86_400_000) {
    const dow = new Date(t).getUTCDay();
    if (dow !== 0 && dow !== 6) days++;
  }
  return days;
}
