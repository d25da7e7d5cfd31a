import type { Answer } from "../../../src/agent/askTool.ts";
import type { Directory } from "./directory.ts";
import type { LeaveService } from "./leave.ts";
import { LEAVE_TYPES, type Employee, type LeaveType } from "./types.ts";

const LEAVE_WORDS: Record<LeaveType, RegExp> = {
  vacation: /\b(vacation|holiday|holidays|pto|annual leave|time off|days off)\b/,
  sick: /\b(sick|illness|ill)\b/,
  personal: /\bpersonal\b/,
  parental: /\b(parental|maternity|paternity|adoption|new parent|baby)\b/,
};

/** Questions about one person (their leave, manager, team, details). */
const PERSONAL =
  /\b(left|remaining|balance|used|manager|boss|report|reports|team|email|title|role|hired|joined|based|office|department|who is|who's|leave|days)\b/;

/** A capitalised name of two or more words ("Zed Xu") made of no HR vocabulary ("Vacation Leave"), or undefined. */
function unknownName(question: string, vocabulary: ReadonlySet<string>): string | undefined {
  for (const m of question.replace(/^\s*\S+/, "").matchAll(/\b([A-Z][a-z'’-]+(?: [A-Z][a-z'’-]+)+)\b/g)) {
    const name = m[1]!.replace(/['’]s$/, "");
    if (
      !name
        .toLowerCase()
        .split(" ")
        .some((w) => vocabulary.has(w))
    )
      return name;
  }
  return undefined;
}

/**
 * Answers HR questions from the directory and leave data with a small set of intents
 * (balance, manager, reports, policy, facts, headcount). It never guesses: a question it
 * cannot place gets a list of what it can answer.
 */
export class HrAnswerer {
  private readonly directory: Directory;
  private readonly leave: LeaveService;

  constructor(directory: Directory, leave: LeaveService) {
    this.directory = directory;
    this.leave = leave;
  }

  async answer(question: string): Promise<Answer> {
    const q = question.toLowerCase();
    const people = this.directory.mentioned(question);
    const person = people[0];
    const leaveType = LEAVE_TYPES.find((t) => LEAVE_WORDS[t].test(q));

    // Whoever the question names must exist: an id or a name that resolves to nobody is said
    // so, never dropped (which would answer a neighbouring question, e.g. the policy).
    const unknownIds = [...question.matchAll(/\b[eE]\d{3,}\b/g)].map((m) => m[0].toUpperCase()).filter((id) => !this.directory.has(id));
    if (unknownIds.length > 0) {
      return {
        answer: `There is no employee ${unknownIds.join(" or ")} in the directory. Ids look like E1001 (E and four digits); find_employee looks one up by name.`,
        sources: ["hr:directory"],
      };
    }
    const named = people.length === 0 ? unknownName(question, this.vocabulary()) : undefined;
    if (named && PERSONAL.test(q)) {
      return {
        answer: `I could not find an employee named "${named}" in the directory. Give the full name as it is listed, or an employee id such as E1001.`,
        sources: ["hr:directory"],
      };
    }

    if (/\b(how many|headcount|number of)\b.*\b(employees|people|staff|headcount)\b|\bheadcount\b/.test(q)) return this.headcount(q);
    if (
      person &&
      /\b(left|remaining|balance|how many|still have|available|used)\b/.test(q) &&
      (leaveType || /\bleave\b|\bdays\b/.test(q))
    ) {
      return this.balance(person, leaveType);
    }
    if (person && /\b(who reports to|reports? to (him|her|them)|direct reports|team of|'s team|reporting to)\b/.test(q)) {
      if (/\bwho does\b|\bmanager of\b|\b's manager\b|\bboss\b/.test(q)) return this.manager(person);
      return this.reports(person);
    }
    if (person && /\b(manager|boss|report to|reports to|supervisor)\b/.test(q)) return this.manager(person);
    if (/\b(policy|policies|carry over|carryover|notice|entitle|allowed|how much|how long|doctor)\b/.test(q) || (leaveType && !person)) {
      return this.policy(leaveType);
    }
    if (person) return this.facts(person, q);
    if (people.length === 0 && /\b(who is|who's|email|title|role)\b/.test(q)) {
      return { answer: "I could not find that person in the directory. Give a full name or an employee id such as E1001.", sources: [] };
    }
    return {
      answer:
        'I answer HR questions: leave balances ("How many vacation days does Alice Chen have left?"), managers and teams ("Who reports to Carmen Alvarez?"), leave policies, headcount, and employee details.',
      sources: [],
    };
  }

  /** Words of the HR domain that are no one's name: leave types, departments, offices. */
  private vocabulary(): Set<string> {
    const words = [...LEAVE_TYPES, "leave", "policy", "policies", "day", "days", "time", "off", "pto", "hr"];
    for (const e of this.directory.all()) words.push(...`${e.department} ${e.location}`.toLowerCase().split(/\s+/));
    return new Set(words);
  }

  private headcount(q: string): Answer {
    const dept = this.directory.departments().find((d) => q.includes(d.toLowerCase()));
    const list = dept ? this.directory.all().filter((e) => e.department === dept) : this.directory.all();
    return {
      answer: dept
        ? `${dept} has ${list.length} employees.`
        : `The company has ${list.length} employees across ${this.directory.departments().length} departments.`,
      sources: ["hr:directory"],
    };
  }

  private async balance(e: Employee, type: LeaveType | undefined): Promise<Answer> {
    const b = await this.leave.balance(e.id);
    const types = type ? [type] : LEAVE_TYPES;
    const parts = types.map((t) => `${b.balances[t].remaining} of ${b.balances[t].entitlement} ${t} days`);
    return { answer: `${e.name} (${e.id}) has ${parts.join(", ")} left in ${b.year}.`, sources: [`hr:leave/${e.id}`] };
  }

  private manager(e: Employee): Answer {
    const m = this.directory.manager(e.id);
    return {
      answer: m
        ? `${e.name} reports to ${m.name} (${m.id}), ${m.title}.`
        : `${e.name} (${e.title}) reports to no one in the directory: the top of the org chart.`,
      sources: [`hr:employee/${e.id}`],
    };
  }

  private reports(e: Employee): Answer {
    const r = this.directory.directReports(e.id);
    return {
      answer:
        r.length === 0
          ? `${e.name} has no direct reports.`
          : `${r.length} people report to ${e.name}: ${r.map((x) => `${x.name} (${x.title})`).join(", ")}.`,
      sources: [`hr:org/${e.id}`],
    };
  }

  private policy(type: LeaveType | undefined): Answer {
    const policies = this.leave.policies();
    const types = type ? [type] : LEAVE_TYPES;
    return {
      answer: types.map((t) => `${policies[t].title}: ${policies[t].summary}`).join(" "),
      sources: types.map((t) => `hr:policy/${t}`),
    };
  }

  private facts(e: Employee, q: string): Answer {
    const bits: string[] = [];
    if (/\bemail\b/.test(q)) bits.push(`email ${e.email}`);
    if (/\b(where|location|based|office|city)\b/.test(q)) bits.push(`based in ${e.location}`);
    if (/\b(hired|joined|start date|since when|how long)\b/.test(q)) bits.push(`hired on ${e.hireDate}`);
    if (/\bdepartment\b/.test(q)) bits.push(`in the ${e.department} department`);
    const detail =
      bits.length > 0 ? bits.join(", ") : `${e.title} in ${e.department}, based in ${e.location}, hired ${e.hireDate}, email ${e.email}`;
    return { answer: `${e.name} (${e.id}): ${detail}.`, sources: [`hr:employee/${e.id}`] };
  }
}
