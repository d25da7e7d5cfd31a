import { BusinessError } from "../../../src/protocol/results.ts";
import type { FinanceData, PayrollEmployee, TaxBand } from "./types.ts";

export interface NetPay {
  employeeId: string;
  name: string;
  country: string;
  period: "monthly" | "annual";
  currency: string;
  gross: number;
  retirement: number;
  incomeTax: number;
  healthInsurance: number;
  net: number;
  effectiveTaxRate: number;
}

/** Net pay from gross: retirement before tax, progressive income tax, health insurance. */
export class PayrollCalculator {
  private readonly payroll: FinanceData["payroll"];

  constructor(data: FinanceData) {
    this.payroll = data.payroll;
  }

  compute(e: PayrollEmployee, period: "monthly" | "annual"): NetPay {
    const table = this.payroll.taxTables[e.country];
    if (!table) {
      throw new BusinessError(
        `No payroll tax table for country ${e.country} (employee ${e.id}). Known: ${Object.keys(this.payroll.taxTables).join(", ")}.`,
      );
    }
    const annualRetirement = e.annualSalary * this.payroll.retirementRate;
    const annualTax = progressiveTax(e.annualSalary - annualRetirement, table);
    const annualHealth = e.dependants > 0 ? this.payroll.healthInsuranceWithDependants * 12 : 0;
    const div = period === "monthly" ? 12 : 1;
    const gross = round2(e.annualSalary / div);
    const retirement = round2(annualRetirement / div);
    const incomeTax = round2(annualTax / div);
    const healthInsurance = round2(annualHealth / div);
    return {
      employeeId: e.id,
      name: e.name,
      country: e.country,
      period,
      currency: e.currency,
      gross,
      retirement,
      incomeTax,
      healthInsurance,
      net: round2(gross - retirement - incomeTax - healthInsurance),
      effectiveTaxRate: Math.round((annualTax / e.annualSalary) * 1000) / 1000,
    };
  }
}

/** Tax on `taxable` with marginal bands. */
export function progressiveTax(taxable: number, bands: readonly TaxBand[]): number {
  let tax = 0;
  let lower = 0;
  for (const [upper, rate] of bands) {
    const top = upper ?? Number.POSITIVE_INFINITY;
    if (taxable > lower) tax += (Math.min(taxable, top) - lower) * rate;
    lower = top;
  }
  return tax;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
