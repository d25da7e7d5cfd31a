import { readFileSync } from "node:fs";
import { Planner, type Plan } from "../../orchestrator/agent/planner/plan.ts";
import { runPlan } from "../../orchestrator/agent/planner/run.ts";
import type { MeshModel } from "../../orchestrator/agent/planner/model.ts";
import { plannerMesh, thirdPartyAgent, type ThirdPartyAgent } from "./plannerMesh.ts";

/** A routing set: `[message, agents a person would say answer it ("ambiguous": ask back)]`. */
export interface RoutingSet {
  about?: string;
  cases: [string, string[]][];
}
/** A compound set: each question, the agents whose tools must work on it, the facts its answer must hold. */
export interface CompoundSet {
  about?: string;
  cases: { q: string; agents: string[]; expect: string[]; confirm?: boolean }[];
}

/** What the built-in planner did with one set, in the terms. */
export interface PlannerScore {
  routing: { cases: number; routedRight: number; askedBack: number; misrouted: number };
  compound: { cases: number; right: number; declined: number; confidentWrong: number };
  /** State-changing calls a plan holds (and --yes would run) for a message that is a question. */
  sideEffectsFromQuestions: number;
  /** One line per case that was not right, for the test's output. */
  misses: string[];
}

/**
 * A question, by the scorer's own rule (not the planner's): it ends with "?" and is not a
 * "can/could/would/will you …" request. Set authors write their questions with "?".
 */
export function isQuestion(message: string): boolean {
  return /\?\s*$/.test(message) && !/^\s*(please\s+)?(can|could|would|will)\s+you\b/i.test(message);
}

/** The state-changing steps of a plan, judged from the tools' annotations (no readOnlyHint, or destructiveHint). */
export function stateChangingSteps(model: MeshModel, plan: Plan): string[] {
  return plan.steps
    .filter((s) => {
      const t = model.agents.find((a) => a.name === s.agent)?.tools.find((x) => x.name === s.tool);
      const a = t?.annotations ?? {};
      return t !== undefined && (a.readOnlyHint !== true || a.destructiveHint === true);
    })
    .map((s) => `${s.agent}.${s.tool}`);
}

/** State-changing tools (agent.tool) a plan's parts ask arguments for ("To submit an expense (finance.submit_expense) I need…"). */
export function stateChangingAsked(model: MeshModel, plan: Plan): string[] {
  const changing = model.targets.filter((t) => t.sideEffect).map((t) => `${t.agent}.${t.tool.name}`);
  const said = [plan.message ?? "", ...plan.parts.map((p) => (p.kind === "problem" ? p.message : ""))].join(" ");
  return changing.filter((c) => said.includes(`(${c})`) && !/^Do you want me to/.test(plan.message ?? ""));
}

/** An answer that says it could not answer (an agent's `ask` refusing, in its own words). */
const REFUSAL = /\b(could not|cannot|can't|unable to|no agent|do not cover|does not cover|not answered|no employee matching|keeps no)\b/i;

const read = <T>(file: string) => JSON.parse(readFileSync(file, "utf8")) as T;

/**
 * Scores the built-in planner on a routing-set file and a compound-set file (either may be
 * omitted), on the demo agents plus an optional third-party agent module (path to a module
 * exporting `createServer()` and `name`, see plannerMesh.ts). Routing: the plan's primary agent
 * against the expected ones ("ambiguous" when it asks back). Compound: every step run (in
 * memory) and the answer checked for every expected fact; an answer that misses one while
 * saying it answered everything is a confident wrong answer, one that says what it could not
 * answer (or asks back) is declined.
 */
export async function scorePlanner(files: {
  routing?: string;
  compound?: string;
  thirdParty?: string | ThirdPartyAgent;
}): Promise<PlannerScore> {
  const third = typeof files.thirdParty === "string" ? await thirdPartyAgent(files.thirdParty) : files.thirdParty;
  const mesh = await plannerMesh(third ? { thirdParty: [third] } : {});
  const planner = new Planner();
  const score: PlannerScore = {
    routing: { cases: 0, routedRight: 0, askedBack: 0, misrouted: 0 },
    compound: { cases: 0, right: 0, declined: 0, confidentWrong: 0 },
    sideEffectsFromQuestions: 0,
    misses: [],
  };
  const sideEffects = (message: string, plan: Plan) => {
    if (!isQuestion(message)) return;
    const changing = stateChangingSteps(mesh.model, plan);
    score.sideEffectsFromQuestions += changing.length;
    if (changing.length) score.misses.push(`side effect from a question: ${message} → ${changing.join(", ")}`);
  };
  try {
    for (const [message, want] of files.routing ? read<RoutingSet>(files.routing).cases : []) {
      const plan = planner.plan(mesh.model, message);
      sideEffects(message, plan);
      const got = plan.decision === "plan" ? (plan.primary ?? "?") : "ambiguous";
      score.routing.cases++;
      if (want.includes(got)) score.routing.routedRight++;
      else if (got === "ambiguous") score.routing.askedBack++;
      else score.routing.misrouted++;
      if (!want.includes(got)) score.misses.push(`routing: ${message} → ${got} (want ${want.join("|")})`);
    }
    for (const c of files.compound ? read<CompoundSet>(files.compound).cases : []) {
      const plan = planner.plan(mesh.model, c.q);
      sideEffects(c.q, plan);
      score.compound.cases++;
      const run = plan.decision === "plan" ? await runPlan(plan, mesh.call) : undefined;
      const answer = run ? run.answer : (plan.message ?? "");
      if (c.expect.every((fact) => answer.includes(fact))) {
        score.compound.right++;
        continue;
      }
      // Declined: asked back, a part said unanswered, or an agent's own answer that says it could not.
      const declined = !run || run.unanswered.length > 0 || REFUSAL.test(answer);
      if (declined) score.compound.declined++;
      else score.compound.confidentWrong++;
      score.misses.push(`compound ${declined ? "declined" : "CONFIDENT WRONG"}: ${c.q} → ${answer.replace(/\s+/g, " ").slice(0, 220)}`);
    }
  } finally {
    await mesh.close();
  }
  return score;
}
