import type { Answer } from "../../../src/agent/askTool.ts";
import type { BudgetBook } from "./budgets.ts";
import type { HrLookup } from "./hrLookup.ts";
import type { PayrollCalculator } from "./payroll.ts";
import { EXPENSE_CATEGORIES } from "./types.ts";

/** Answers finance questions: budgets, expense limits, net pay (asking HR who is who). */
export class FinanceAnswerer {
  private readonly budgets: BudgetBook;
  private readonly payroll: PayrollCalculator;
  private readonly hr: HrLookup;

  constructor(budgets: BudgetBook, payroll: PayrollCalculator, hr: HrLookup) {
    this.budgets = budgets;
    this.payroll = payroll;
    this.hr = hr;
  }

  async answer(question: string, signal?: AbortSignal): Promise<Answer> {
    const q = question.toLowerCase();
    if (/\b(net pay|take[- ]home|after tax|net salary|payslip|paycheck|paid net|income tax)\b/.test(q))
      return this.netPay(question, q, signal);
    const dept = this.budgets.departments().find((d) => new RegExp(`\\b${d.toLowerCase()}\\b`).test(q));
    if (dept && /\b(budget|spent|spend|spending|remaining|left|allocated|allocation)\b/.test(q)) {
      const s = await this.budgets.status(dept);
      return {
        answer: `${s.department} has spent ${fmt(s.spent)} of its ${fmt(s.allocated)} ${s.currency} budget for ${s.fiscalYear} (${Math.round(s.utilisation * 100)}%); ${fmt(s.remaining)} ${s.currency} remain.`,
        sources: [`finance:budget/${s.department}`],
      };
    }
    // A department the books do not know is said so, not answered with every budget.
    const other =
      !dept && /\b(budget|spent|spend|spending|allocated)\b/.test(q) ? unknownDepartment(question, this.budgets.departments()) : undefined;
    if (other) {
      return {
        answer: `Finance keeps no budget for "${other}". Departments with budgets: ${this.budgets.departments().join(", ")}.`,
        sources: ["finance:budgets"],
      };
    }
    if (/\b(budget|budgets)\b/.test(q)) {
      const all = await Promise.all(this.budgets.departments().map((d) => this.budgets.status(d)));
      const allocated = all.reduce((s, b) => s + b.allocated, 0);
      const spent = all.reduce((s, b) => s + b.spent, 0);
      return {
        answer: `Operating budgets total ${fmt(allocated)} USD, of which ${fmt(spent)} USD is spent. By department: ${all.map((b) => `${b.department} ${fmt(b.remaining)} left`).join(", ")}.`,
        sources: all.map((b) => `finance:budget/${b.department}`),
      };
    }
    const category = EXPENSE_CATEGORIES.find((c) => q.includes(c === "meals" ? "meal" : c));
    if (/\b(expense|expenses|reimburs|claim|limit|spend on|allowed)\b/.test(q)) {
      const cats = category ? [category] : EXPENSE_CATEGORIES;
      return {
        answer: `Expense limits per item: ${cats.map((c) => `${c} ${this.budgets.limit(c)} USD`).join(", ")}. Every expense is charged to a department budget and refused if it would exceed what remains.`,
        sources: ["finance:expense-limits"],
      };
    }
    return {
      answer:
        'I answer finance questions: department budgets ("How much budget does Marketing have left?"), expense limits, and net pay ("What is the take-home pay of Bob Okafor?").',
      sources: [],
    };
  }

  private async netPay(question: string, q: string, signal?: AbortSignal): Promise<Answer> {
    const id = /\b[eE]\d{4}\b/.exec(question)?.[0];
    const name = /\b([A-Z][a-z'’-]+(?: [A-Z][a-z'’-]+)+)\b/.exec(question.replace(/^\s*\w+/, ""))?.[1];
    const query = id ?? name;
    if (!query) return { answer: "Whose net pay? Give a full name or an employee id such as E1001.", sources: [] };
    const matches = await this.hr.find(query, signal);
    const e = matches[0];
    if (!e || matches.length > 1) {
      return {
        answer: !e
          ? `HR has no employee matching "${query}".`
          : `"${query}" matches ${matches.length} employees (${matches.map((m) => `${m.name} ${m.id}`).join(", ")}); which one?`,
        sources: ["hr:find_employee"],
      };
    }
    const period = /\b(annual|year|yearly)\b/.test(q) ? "annual" : "monthly";
    const p = this.payroll.compute(e, period);
    return {
      answer: `${p.name} (${p.employeeId}) takes home ${fmt(p.net)} ${p.currency} ${period === "monthly" ? "a month" : "a year"}: gross ${fmt(p.gross)}, income tax ${fmt(p.incomeTax)}, retirement ${fmt(p.retirement)}, health insurance ${fmt(p.healthInsurance)}.`,
      sources: ["hr:find_employee", `finance:payroll/${p.employeeId}`],
    };
  }
}

/** A capitalised word (not the question's first) that names no known department, e.g. "Legal". */
function unknownDepartment(question: string, departments: readonly string[]): string | undefined {
  const known = new Set(departments.map((d) => d.toLowerCase()));
  for (const m of question.replace(/^\s*\S+/, "").matchAll(/\b([A-Z][A-Za-z&-]+(?: [A-Z][A-Za-z&-]+)*)\b/g)) {
    const name = m[1]!;
    if (!known.has(name.toLowerCase()) && !/^(USD|EUR|I|Q[1-4]|FY\d*)$/.test(name)) return name;
  }
  return undefined;
}

function fmt(n: number): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: 2 });
}
