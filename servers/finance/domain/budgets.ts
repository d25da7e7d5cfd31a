import { randomUUID } from "node:crypto";
import { BusinessError } from "../../../src/protocol/results.ts";
import type { SharedState } from "../../../src/state/sharedState.ts";
import type { ExpenseCategory, FinanceData } from "./types.ts";

export interface Expense {
  expenseId: string;
  employeeId: string;
  department: string;
  category: ExpenseCategory;
  amount: number;
  description: string;
  status: "approved";
  createdAt: string;
}

export interface BudgetStatus {
  department: string;
  fiscalYear: number;
  currency: string;
  allocated: number;
  spent: number;
  remaining: number;
  utilisation: number;
}

/** Expenses booked through the agent, per department, in shared state. */
interface BudgetLedger {
  /** Sum of every expense ever booked (the list below keeps only the latest). */
  booked: number;
  count: number;
  recent: Expense[];
}

/** How many expenses a department's ledger keeps for list_expenses. @default 100 */
export const RECENT_EXPENSES_KEPT = 100;

/**
 * Department budgets and expenses. The check "does this expense fit the remaining
 * budget" and the booking happen in one atomic update of shared state, so concurrent
 * expenses on different replicas can never overspend a budget together.
 */
export class BudgetBook {
  private readonly data: FinanceData;
  private readonly state: SharedState;

  constructor(data: FinanceData, state: SharedState) {
    this.data = data;
    this.state = state;
  }

  departments(): string[] {
    return Object.keys(this.data.budgets).sort();
  }

  /** The canonical department name for any casing, or a BusinessError listing them. */
  department(name: string): string {
    const found = this.departments().find((d) => d.toLowerCase() === name.trim().toLowerCase());
    if (!found) throw new BusinessError(`Unknown department "${name}". Departments: ${this.departments().join(", ")}.`);
    return found;
  }

  async status(department: string): Promise<BudgetStatus> {
    const dept = this.department(department);
    return this.toStatus(dept, (await this.state.get<BudgetLedger>(key(dept))) ?? emptyLedger());
  }

  async recent(department: string, limit: number): Promise<Expense[]> {
    const dept = this.department(department);
    const ledger = (await this.state.get<BudgetLedger>(key(dept))) ?? emptyLedger();
    return ledger.recent.slice(-limit).reverse();
  }

  limit(category: ExpenseCategory): number {
    return this.data.expenseLimits[category];
  }

  async submit(input: {
    employeeId: string;
    department: string;
    category: ExpenseCategory;
    amount: number;
    description: string;
  }): Promise<{ expense: Expense; budget: BudgetStatus }> {
    const dept = this.department(input.department);
    const amount = Math.round(input.amount * 100) / 100;
    const cap = this.data.expenseLimits[input.category];
    if (amount > cap) {
      throw new BusinessError(
        `A ${input.category} expense may be at most ${cap} ${this.data.currency} per item (expense policy); got ${amount}. Larger purchases go through procurement.`,
      );
    }
    let expense: Expense | undefined;
    const ledger = await this.state.update<BudgetLedger>(key(dept), (current) => {
      const cur = current ?? emptyLedger();
      const status = this.toStatus(dept, cur);
      if (amount > status.remaining) {
        throw new BusinessError(
          `Over budget: ${dept} has ${status.remaining} ${this.data.currency} left of ${status.allocated} for ${this.data.fiscalYear}; this expense is ${amount}. Ask the department head or the CFO for more budget.`,
        );
      }
      expense = {
        expenseId: `EX-${randomUUID().slice(0, 8)}`,
        employeeId: input.employeeId.toUpperCase(),
        department: dept,
        category: input.category,
        amount,
        description: input.description,
        status: "approved",
        createdAt: new Date().toISOString(),
      };
      return { booked: round2(cur.booked + amount), count: cur.count + 1, recent: [...cur.recent, expense].slice(-RECENT_EXPENSES_KEPT) };
    });
    return { expense: expense!, budget: this.toStatus(dept, ledger) };
  }

  private toStatus(dept: string, ledger: BudgetLedger): BudgetStatus {
    const b = this.data.budgets[dept]!;
    const spent = round2(b.spent + ledger.booked);
    return {
      department: dept,
      fiscalYear: this.data.fiscalYear,
      currency: this.data.currency,
      allocated: b.allocated,
      spent,
      remaining: round2(Math.max(0, b.allocated - spent)),
      utilisation: Math.round((spent / b.allocated) * 1000) / 1000,
    };
  }
}

function key(dept: string): string {
  return `budget/${dept.toLowerCase()}`;
}

function emptyLedger(): BudgetLedger {
  return { booked: 0, count: 0, recent: [] };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
