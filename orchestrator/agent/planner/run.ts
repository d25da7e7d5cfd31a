import type { CallToolResult } from "@modelcontextprotocol/client";
import { resultText } from "../../../src/protocol/results.ts";
import { describeError } from "../../../src/protocol/errors.ts";
import type { Plan } from "./plan.ts";
import type { Arg, Step } from "./planTypes.ts";
import { resolveRef, type Outcome, type OutcomeOf } from "./outcomes.ts";
import { renderParts, type AnswerFocus } from "./answer.ts";

/** Calls one tool through the mesh (with the MeshContext continued); returns its result and the instance that answered. */
export type StepCaller = (step: Step, args: Record<string, unknown>) => Promise<{ result: CallToolResult; instance: string }>;

export interface StepRun {
  id: string;
  agent: string;
  tool: string;
  args: Record<string, unknown>;
  why: string;
  status: "ok" | "error" | "skipped";
  instance?: string;
  ms?: number;
  error?: string;
  /** Why it did not answer: the tool refused (a business failure, isError) or the call failed in the mesh. */
  failure?: "business" | "mesh";
  /** The step would change something (book, file): it ran only because the change was confirmed. */
  changes?: boolean;
}

/** Something the question asked for that did not happen (`mesh ask` exits non-zero when there is any). */
export interface AskFailure {
  /** business: an agent refused (isError); mesh: a call failed under it; unanswered: a part no step could answer. */
  kind: "business" | "mesh" | "unanswered";
  /** The step (and its agent and tool), when a step failed. */
  step?: string;
  agent?: string;
  tool?: string;
  /** A change (a booking, an expense) that did not happen. */
  changes: boolean;
  message: string;
}

/**
 * What did not happen in a run: each step that failed or was skipped (a change not made,
 * an answer not read) and each part of the question left unanswered. Empty when everything
 * asked for was done.
 */
export function failuresOf(steps: readonly StepRun[], unanswered: readonly string[] = []): AskFailure[] {
  const failures: AskFailure[] = [];
  for (const s of steps) {
    if (s.status === "ok") continue;
    // A skipped read-only step shows in the part it could not answer; a skipped change is a change not made.
    if (s.status === "skipped" && !s.changes) continue;
    failures.push({
      kind: s.status === "skipped" ? "unanswered" : (s.failure ?? "business"),
      step: s.id,
      agent: s.agent,
      tool: s.tool,
      changes: s.changes === true,
      message: s.error ?? (s.status === "skipped" ? "not run" : "failed"),
    });
  }
  const said = new Set(failures.map((f) => f.message));
  for (const u of unanswered) if (![...said].some((m) => u.endsWith(m))) failures.push({ kind: "unanswered", changes: false, message: u });
  return failures;
}

export interface PlanRun {
  answer: string;
  steps: StepRun[];
  /** agent.tool of every step that answered. */
  used: string[];
  /** Parts of the question not answered, and why. */
  unanswered: string[];
  /** The entity the answer ends on (for a follow-up), when one step's result names it. */
  focus?: AnswerFocus;
}

/** Runs a plan: every step as soon as the steps it needs have answered, the rest in parallel. */
export async function runPlan(plan: Plan, call: StepCaller): Promise<PlanRun> {
  const outcomes = new Map<string, Promise<Outcome>>();
  const runs = new Map<string, StepRun>();
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const start = (step: Step): Promise<Outcome> => {
    let p = outcomes.get(step.id);
    if (p) return p;
    const run: StepRun = {
      id: step.id,
      agent: step.agent,
      tool: step.tool,
      args: {},
      why: step.why,
      status: "skipped",
      ...(step.sideEffect ? { changes: true } : {}),
    };
    runs.set(step.id, run);
    p = runStep(step, run, call, (id) => start(byId.get(id)!));
    outcomes.set(step.id, p);
    return p;
  };
  await Promise.all(plan.steps.map(start));
  const { lines, unanswered, focus } = await renderParts(plan.parts, async (id) => outcomes.get(id)!);
  const steps = plan.steps.map((s) => runs.get(s.id)!);
  const used = usedBy(steps);
  const by = used.length ? `\n\n— ${used.join(", ")}` : "";
  return { answer: lines.join("\n\n") + by, steps, used, unanswered, ...(focus ? { focus } : {}) };
}

/** agent.tool of every step that answered, each once, in the order they stand. */
export function usedBy(steps: readonly StepRun[]): string[] {
  return [...new Set(steps.filter((s) => s.status === "ok").map((s) => `${s.agent}.${s.tool}`))];
}

/**
 * One step, recorded in `run`: its arguments once the steps it needs have answered (the
 * first that did not is its error), then the call; a refusal (isError) is a business
 * failure, a call that failed in the mesh a mesh failure.
 */
async function runStep(step: Step, run: StepRun, call: StepCaller, outcome: OutcomeOf): Promise<Outcome> {
  const args: Record<string, unknown> = {};
  for (const [k, a] of Object.entries(step.args)) {
    const v = await resolveArg(a, outcome);
    if (!v.ok) {
      run.error = v.error;
      return { ok: false, error: v.error };
    }
    args[k] = v.value;
  }
  run.args = args;
  const t0 = performance.now();
  try {
    const { result, instance } = await call(step, args);
    run.instance = instance;
    run.ms = Math.round((performance.now() - t0) * 10) / 10;
    if (result.isError) {
      run.status = "error";
      run.failure = "business";
      run.error = resultText(result);
      return { ok: false, error: run.error };
    }
    run.status = "ok";
    return { ok: true, result, structured: result.structuredContent };
  } catch (e) {
    run.ms = Math.round((performance.now() - t0) * 10) / 10;
    run.status = "error";
    run.failure = "mesh";
    run.error = describeError(e);
    return { ok: false, error: run.error };
  }
}

/** An argument's value: as planned, or the id (or name) an earlier step's result gives. */
async function resolveArg(a: Arg, outcome: OutcomeOf): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  if (typeof a !== "object") return { ok: true, value: a };
  const v = await resolveRef(a.$ref, outcome);
  if (!v.ok) return v;
  const value = v.value as { id?: unknown } | string;
  if (typeof value === "string") return { ok: true, value };
  if (value && typeof value === "object" && typeof value.id === "string") return { ok: true, value: value.id };
  return { ok: false, error: "an earlier step found nothing to continue with" };
}
