export const LEAVE_TYPES = ["vacation", "sick", "personal", "parental"] as const;
export type LeaveType = (typeof LEAVE_TYPES)[number];

export interface Employee {
  id: string;
  name: string;
  email: string;
  title: string;
  department: string;
  managerId: string | null;
  location: string;
  country: string;
  hireDate: string;
  employment: "full-time" | "part-time";
  annualSalary: number;
  currency: string;
  /** People covered by the employee's health insurance (drives the payroll deduction). */
  dependants: number;
  leaveUsed: Record<LeaveType, number>;
}

export interface LeavePolicy {
  title: string;
  daysPerYear: number;
  summary: string;
  minNoticeDays: number;
  maxConsecutiveDays: number;
}

export interface HrData {
  leaveYear: number;
  entitlements: Record<LeaveType, number>;
  policies: Record<LeaveType, LeavePolicy>;
  employees: Employee[];
}
