import { BusinessError } from "../../../src/protocol/results.ts";
import type { Employee } from "./types.ts";

/** The employee directory and org chart; read-only, loaded from the shipped data. */
export class Directory {
  private readonly byId: Map<string, Employee>;
  private readonly employees: readonly Employee[];

  constructor(employees: readonly Employee[]) {
    this.employees = employees;
    this.byId = new Map(employees.map((e) => [e.id, e]));
  }

  get size(): number {
    return this.employees.length;
  }

  all(): readonly Employee[] {
    return this.employees;
  }

  /** Whether an employee has this id. */
  has(id: string): boolean {
    return this.byId.has(id.trim().toUpperCase());
  }

  /** The employee with this id, or a BusinessError that says how ids look. */
  get(id: string): Employee {
    const e = this.byId.get(id.trim().toUpperCase());
    if (!e) throw new BusinessError(`Unknown employee id "${id}". Ids look like E1001; use find_employee to look one up by name.`);
    return e;
  }

  /**
   * Employees matching every word of the query against id, name, email, title,
   * department or location (case-insensitive), best matches (name hits) first.
   */
  find(query: string, limit = 10): Employee[] {
    const words = query
      .toLowerCase()
      .split(/[^a-z0-9@.'-]+/)
      .filter(Boolean);
    if (words.length === 0) return [];
    const scored: { e: Employee; score: number }[] = [];
    for (const e of this.employees) {
      const name = e.name.toLowerCase();
      const hay = `${e.id} ${name} ${e.email} ${e.title} ${e.department} ${e.location} ${e.country}`.toLowerCase();
      if (!words.every((w) => hay.includes(w))) continue;
      const score = words.reduce((s, w) => s + (e.id.toLowerCase() === w ? 10 : name.split(" ").includes(w) ? 3 : 1), 0);
      scored.push({ e, score });
    }
    return scored
      .sort((a, b) => b.score - a.score || a.e.id.localeCompare(b.e.id))
      .slice(0, limit)
      .map((s) => s.e);
  }

  directReports(managerId: string): Employee[] {
    const manager = this.get(managerId);
    return this.employees.filter((e) => e.managerId === manager.id);
  }

  manager(employeeId: string): Employee | undefined {
    const e = this.get(employeeId);
    return e.managerId ? this.byId.get(e.managerId) : undefined;
  }

  departments(): string[] {
    return [...new Set(this.employees.map((e) => e.department))].sort();
  }

  /** Employees named in free text: full names first, then unambiguous first or last names. */
  mentioned(text: string): Employee[] {
    const lower = ` ${text.toLowerCase().replace(/[^a-z0-9' ]+/g, " ")} `;
    const full = this.employees.filter((e) => lower.includes(` ${e.name.toLowerCase()} `) || lower.includes(` ${e.id.toLowerCase()} `));
    if (full.length > 0) return full;
    const out: Employee[] = [];
    for (const part of [0, 1] as const) {
      const byPart = new Map<string, Employee[]>();
      for (const e of this.employees) {
        const key = e.name.toLowerCase().split(" ")[part] ?? "";
        byPart.set(key, [...(byPart.get(key) ?? []), e]);
      }
      for (const [key, list] of byPart) {
        if (list.length === 1 && key.length > 2 && new RegExp(`[ ]${escapeRe(key)}(?:'s)?[ ]`).test(lower)) out.push(list[0]!);
      }
    }
    return [...new Set(out)];
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
