import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asksToAct, Planner } from "../../orchestrator/agent/planner/plan.ts";
import { runPlan } from "../../orchestrator/agent/planner/run.ts";
import { speechAct } from "../../orchestrator/agent/planner/speechAct.ts";
import { amounts, dates } from "../../orchestrator/agent/planner/language.ts";
import { plannerMesh, thirdPartyAgent } from "../helpers/plannerMesh.ts";
import { stateChangingAsked, stateChangingSteps } from "../helpers/plannerScore.ts";

// Issue 23: a question never causes a side effect. Phrasings of our own, shaped like each failure
// measured on the independent sets (an amount in a budget question read as an expense; "open" in
// "show me … open tickets" read as open_ticket; a word another agent owns winning), across the
// demo agents and a third-party agent the planner has never been tuned on (the helpdesk fixture).
let mesh: Awaited<ReturnType<typeof plannerMesh>>;
const planner = new Planner();
const NOW = new Date("2026-12-02T12:00:00Z");
const CHANGING = /\.(submit_expense|request_leave|run_payroll|open_ticket|close_ticket)$/;

beforeAll(async () => {
  mesh = await plannerMesh({ thirdParty: [await thirdPartyAgent("test/fixtures/helpdeskAgent.ts")] });
});
afterAll(() => mesh.close());

const QUESTIONS = [
  // An amount in a question about a budget.
  "Does the Legal budget cover a 1,500 USD course?",
  "Is there room in Marketing's budget for a $2k conference?",
  "Would a 1,200 USD training still fit in Engineering's remaining budget?",
  "Can Support afford a 3,000 USD team offsite?",
  "If Wei Zhang spent 80 USD on a client dinner, would that be within the meals limit?",
  "How much would Sales have left after a 5k USD trip?",
  // "open" (a tool's verb) as an adjective.
  "Show me Wei Zhang's open tickets",
  "What open tickets does Uma Patel have?",
  "Any open tickets for Bob Okafor?",
  "List the open helpdesk tickets of Maya Cohen and of her manager",
  "Open tickets for Zara Ahmed?",
  "open tickets of Wei Zhang",
  "What are Wei Zhang's open tickets, and does he have any open ones?",
  // Asking about an action, not asking for it.
  "Can I book 3 days of vacation for Bob Okafor starting 2026-12-21?",
  "How many vacation days would Bob Okafor have left if he took 2026-12-21 to 2026-12-23 off?",
  "Did Bob Okafor request leave for 2026-12-21?",
  "Is the payroll for 2026-11 run already?",
  "Was ticket HD-2005 closed?",
  "Should I close ticket HD-2005?",
  "Close ticket HD-2005",
  // A word another agent owns ("bought" once meant an expense).
  "When was Bob Okafor's laptop bought?",
  "Who submitted the most expenses in Sales?",
  "What did Wei Zhang file with the helpdesk?",
  // A statement is context, not a request.
  "my laptop is broken, I am Wei Zhang",
  "I need a new laptop charger",
];

describe("a question never plans a state-changing tool", () => {
  it.each(QUESTIONS)("%s", async (q) => {
    expect(asksToAct(q)).toBe(false);
    const plan = planner.plan(mesh.model, q, { now: NOW });
    expect(stateChangingSteps(mesh.model, plan)).toEqual([]);
    expect(plan.effects).toEqual([]);
    // Nor is it answered with what a change would need ("To submit an expense … I need employee_id").
    expect(stateChangingAsked(mesh.model, plan)).toEqual([]);
    // Run it as --yes would: nothing that changes state is called, by the plan or by an agent it asks.
    const before = mesh.calls.length;
    if (plan.decision === "plan") await runPlan(plan, mesh.call);
    expect(mesh.calls.slice(before).filter((c) => CHANGING.test(c))).toEqual([]);
  });
});

describe("a request still acts, exactly as asked (shown first, run once confirmed)", () => {
  const effect = (q: string) => {
    const plan = planner.plan(mesh.model, q, { now: NOW });
    expect(plan.decision).toBe("plan");
    return plan.steps.filter((s) => plan.effects.includes(s.id)).map((s) => ({ tool: `${s.agent}.${s.tool}`, args: s.args }));
  };

  it("an amount with a separator and a currency is that amount", () => {
    expect(effect("Please file a 1,500 USD training expense for Rosa Moreno in Engineering for a Kubernetes course")).toEqual([
      {
        tool: "finance.submit_expense",
        args: expect.objectContaining({ employee_id: "E1018", department: "Engineering", category: "training", amount: 1500 }),
      },
    ]);
    expect(effect("Could you submit a $2k equipment expense for Wei Zhang in Engineering for a monitor?")).toEqual([
      { tool: "finance.submit_expense", args: expect.objectContaining({ amount: 2000, category: "equipment" }) },
    ]);
  });

  it("a relative date is read against today", () => {
    expect(effect("Book 2 days of vacation for Bob Okafor starting next Monday")).toEqual([
      {
        tool: "hr.request_leave",
        args: { employee_id: "E1002", leave_type: "vacation", start_date: "2026-12-07", end_date: "2026-12-08" },
      },
    ]);
  });

  it("a third-party tool's free-text parameter is filled from the question's own words, whatever its name; its enums from the schema", () => {
    expect(effect("Could you open a ticket for Jonas Berg: his laptop keyboard is broken")).toEqual([
      { tool: "helpdesk.open_ticket", args: { requester_id: "E1036", summary: "his laptop keyboard is broken" } },
    ]);
    expect(effect("Please raise a network ticket for Wei Zhang because the VPN drops every hour")).toEqual([
      { tool: "helpdesk.open_ticket", args: { requester_id: "E1023", category: "network", summary: "the VPN drops every hour" } },
    ]);
  });

  it("a statement beside a request is its context: what a ticket says, who 'I' is", async () => {
    expect(effect("I need a new laptop charger, can you open a ticket for Bob Okafor?")).toEqual([
      { tool: "helpdesk.open_ticket", args: { requester_id: "E1002", summary: "I need a new laptop charger" } },
    ]);
    const plan = planner.plan(mesh.model, "I'm Maya Cohen, who is my manager?", { now: NOW });
    expect((await runPlan(plan, mesh.call)).answer).toContain("Maya Cohen's manager: Farid Haddad (E1006).");
  });

  it("a destructive tool is a change too, and an unclear imperative asks back instead of acting", () => {
    expect(effect("Please close ticket HD-2005")).toEqual([{ tool: "helpdesk.close_ticket", args: { ticket_id: "HD-2005" } }]);
    const unclear = planner.plan(mesh.model, "Close ticket HD-2005", { now: NOW });
    expect(unclear).toMatchObject({ decision: "ambiguous", steps: [], message: expect.stringContaining("helpdesk.close_ticket") });
  });

  it("the same change asked twice in one message is one call", () => {
    const plan = planner.plan(
      mesh.model,
      "Book 1 day of sick leave for Wei Zhang starting 2026-12-07 and book 1 day of sick leave for Wei Zhang starting 2026-12-07",
      { now: NOW },
    );
    expect(plan.effects).toHaveLength(1);
  });
});

describe("reading the sentence's form (wink-nlp) and its values (wink-nlp, chrono-node)", () => {
  it.each([
    ["Book 2 days of vacation for Bob", "request"],
    ["Please submit a taxi expense of 35 USD for Bob", "request"],
    ["Can you book 2 days off for Bob?", "request"],
    ["I'd like to request sick leave tomorrow", "request"],
    ["I want to file a 40 USD meals expense", "request"],
    ["Open a ticket for Wei Zhang: laptop screen broken", "request"],
    ["Show me Bob Okafor's open tickets", "question"],
    ["Can you tell me who manages Keiko Sato?", "question"],
    ["Does the Marketing budget cover a 1,500 USD course?", "question"],
    ["Pay of Bob", "question"],
    ["Can I book vacation in December?", "unclear"],
    ["open tickets for Bob", "unclear"],
  ])("%s → %s", (q, kind) => {
    expect(speechAct(q).kind).toBe(kind);
  });

  it("amounts: separators, currencies, magnitudes; not ids, dates or durations", () => {
    expect(amounts("Does Legal cover a 1,500 USD course?").map((a) => [a.value, a.currency])).toEqual([[1500, "USD"]]);
    expect(amounts("a $2k conference").map((a) => [a.value, a.currency])).toEqual([[2000, "USD"]]);
    expect(amounts("E1002 wants 2 days off")).toEqual([]);
  });

  it("dates: ISO, ranges and relative days; not vague spans", () => {
    expect(dates("from 2026-12-28 to 2026-12-30", NOW)).toMatchObject([{ start: "2026-12-28", end: "2026-12-30" }]);
    expect(dates("starting next Monday for 2 days", NOW)).toMatchObject([{ start: "2026-12-07" }]);
    expect(dates("sometime next week", NOW)).toEqual([]);
  });
});

describe("answers say what they answered (issue 23: no confident wrong answers)", () => {
  const answer = async (q: string) => {
    const plan = planner.plan(mesh.model, q, { now: NOW });
    expect(plan.decision, plan.message).toBe("plan");
    return runPlan(plan, mesh.call);
  };

  it("a manager's direct reports are not the whole department, and the department is not the direct reports", async () => {
    const reports = await answer("Who does Maya Cohen manage?");
    expect(reports.answer).toContain("Maya Cohen's direct reports (4): Priya Nair (E1042)");
    expect(reports.answer).not.toContain("Farid Haddad");
    const department = await answer("Who works in Maya Cohen's department?");
    expect(department.answer).toContain("Maya Cohen's department: Marketing.");
    for (const name of ["Farid Haddad", "Priya Nair", "Tomas Horvat"]) expect(department.answer).toContain(name);
  });

  it("a question about data no agent holds is answered as such, with what the agents do hold", async () => {
    const run = await answer("What is Bob Okafor's shoe size?");
    expect(run.answer).toMatch(
      /^No agent in the mesh holds "shoe size" for Bob Okafor\. What they hold about an employee: hr: .*helpdesk: /,
    );
    expect(run.unanswered).toHaveLength(1);
  });

  it("an agent's answer from none of its sources (its help text, a refusal) is said to be no answer", async () => {
    const run = await answer("Can I bring my dog to the office?");
    expect(run.answer).toMatch(/^knowledge could not answer "Can I bring my dog to the office\?" from its data\. It says: /);
    expect(run.unanswered).toHaveLength(1);
  });

  it("a third-party agent's raw record is answered with the field asked for, about whom it was asked", async () => {
    const run = await answer("When was Bob Okafor's laptop bought?");
    expect(run.answer).toBe("Bob Okafor's laptop purchased: 2024-04-02.\n\n— helpdesk.get_laptop");
  });

  it("a comparison says who has more, with every value", async () => {
    const run = await answer("Who takes home more, Bob Okafor or Carmen Alvarez?");
    expect(run.answer).toContain("Bob Okafor has the highest net: 11813.18 (Carmen Alvarez: 10328.36).");
  });

  it("a misspelt name is the one name within a small edit distance; a link is followed back from the third-party agent to hr", async () => {
    expect((await answer("What is Wei Zang's email?")).answer).toContain("Wei Zhang's email: wei.zhang@example.com.");
    const back = await answer("Who is the manager of the person who raised HD-2004?");
    expect(back.answer).toContain("HD-2004's requester: Uma Patel (E1046).");
    expect(back.answer).toContain("HD-2004's requester's manager: Noah Schmidt (E1014).");
  });
});
