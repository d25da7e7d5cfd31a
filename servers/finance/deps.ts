import type { SharedState } from "../../src/state/sharedState.ts";
import type { BudgetBook } from "./domain/budgets.ts";
import type { HrLookup } from "./domain/hrLookup.ts";
import type { PayrollCalculator } from "./domain/payroll.ts";
import type { FinanceAnswerer } from "./domain/answer.ts";

export interface FinanceDeps {
  budgets: BudgetBook;
  payroll: PayrollCalculator;
  hr: HrLookup;
  answerer: FinanceAnswerer;
  /** Shared state (Consul KV when registered): recorded payrolls. */
  state: SharedState;
}
