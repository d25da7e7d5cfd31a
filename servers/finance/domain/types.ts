export const EXPENSE_CATEGORIES = ["meals", "equipment", "software", "training", "travel", "other"] as const;
export type ExpenseCategory = (typeof EXPENSE_CATEGORIES)[number];

/** [upper bound of the band (null: no bound), marginal rate] */
export type TaxBand = [number | null, number];

export interface FinanceData {
  fiscalYear: number;
  currency: string;
  budgets: Record<string, { allocated: number; spent: number }>;
  expenseLimits: Record<ExpenseCategory, number>;
  payroll: {
    retirementRate: number;
    healthInsuranceWithDependants: number;
    taxTables: Record<string, TaxBand[]>;
  };
}

/** What finance needs of an employee; HR owns the record. */
export interface PayrollEmployee {
  id: string;
  name: string;
  country: string;
  annualSalary: number;
  currency: string;
  dependants: number;
  department: string;
}
