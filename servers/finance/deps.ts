import type { BudgetBook } from "./domain/budgets.ts";
import type { HrLookup } from "./domain/hrLookup.ts";
import type { PayrollCalculator } from "./domain/payroll.ts";
import type { FinanceAnswerer } from "./domain/answer.ts";

export interface FinanceDeps {
  budgets: BudgetBook;
  payroll: PayrollCalculator;
  hr: HrLookup;
  answerer: FinanceAnswerer;
}
