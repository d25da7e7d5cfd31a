import type { CallToolResult } from "@modelcontextprotocol/client";
import { resultText } from "../../../src/protocol/results.ts";
import { describeError } from "../../../src/protocol/errors.ts";
import type { Plan } from "./plan.ts";
import type { Arg, Hop, Part, Ref, Step, Subject } from "./planTypes.ts";

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
  focus?: { type: string; id: string; name: string };
}

type Outcome = { ok: true; result: CallToolResult; structured: unknown } | { ok: false; error: string };

/** Runs a plan: every step as soon as the steps it needs have answered, the rest in parallel. */
export async function runPlan(plan: Plan, call: StepCaller): Promise<PlanRun> {
  const outcomes = new Map<string, Promise<Outcome>>();
  const runs = new Map<string, StepRun>();
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const start = (step: Step): Promise<Outcome> => {
    let p = outcomes.get(step.id);
    if (p) return p;
    p = (async (): Promise<Outcome> => {
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
      const args: Record<string, unknown> = {};
      for (const [k, a] of Object.entries(step.args)) {
        const v = await resolveArg(a, (id) => start(byId.get(id)!));
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
    })();
    outcomes.set(step.id, p);
    return p;
  };
  await Promise.all(plan.steps.map(start));
  const get = async (id: string) => outcomes.get(id)!;

  const lines: string[] = [];
  const unanswered: string[] = [];
  let focus: PlanRun["focus"];
  for (const part of plan.parts) {
    const r = await renderPart(part, get);
    lines.push(r.text);
    if (r.problem) unanswered.push(`${part.clause}: ${r.problem}`);
    focus = r.focus ?? focus;
  }
  const steps = plan.steps.map((s) => runs.get(s.id)!);
  const used = [...new Set(steps.filter((s) => s.status === "ok").map((s) => `${s.agent}.${s.tool}`))];
  const by = used.length ? `\n\n— ${used.join(", ")}` : "";
  return { answer: lines.join("\n\n") + by, steps, used, unanswered, ...(focus ? { focus } : {}) };
}

async function resolveArg(
  a: Arg,
  outcome: (step: string) => Promise<Outcome>,
): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  if (typeof a !== "object") return { ok: true, value: a };
  const v = await resolveRef(a.$ref, outcome);
  if (!v.ok) return v;
  const value = v.value as { id?: unknown } | string;
  if (typeof value === "string") return { ok: true, value };
  if (value && typeof value === "object" && typeof value.id === "string") return { ok: true, value: value.id };
  return { ok: false, error: "an earlier step found nothing to continue with" };
}

async function resolveRef(
  ref: Ref,
  outcome: (step: string) => Promise<Outcome>,
): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  const o = await outcome(ref.step);
  if (!o.ok) return { ok: false, error: o.error };
  let v: unknown = o.structured;
  for (const k of ref.path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
  if (ref.pick) {
    if (!Array.isArray(v) || v.length === 0) return { ok: false, error: "the list is empty" };
    const { field, order } = ref.pick;
    const sorted = [...v].sort((x, y) =>
      String((x as Record<string, unknown>)[field]).localeCompare(String((y as Record<string, unknown>)[field])),
    );
    v = order === "max" ? sorted.at(-1) : sorted[0];
  }
  if (v === undefined || v === null) return { ok: false, error: "there is none" };
  return { ok: true, value: v };
}

function describe(v: unknown): string {
  if (typeof v === "string" || typeof v === "number") return String(v);
  if (Array.isArray(v)) return v.length === 0 ? "none" : `${v.length}: ${v.map(describe).join(", ")}`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o["name"] === "string") return typeof o["id"] === "string" ? `${o["name"]} (${o["id"]})` : o["name"];
  }
  return JSON.stringify(v);
}

async function renderHops(
  hops: Hop[],
  outcome: (step: string) => Promise<Outcome>,
): Promise<{ lines: string[]; problem?: string; last?: unknown; type?: string }> {
  const lines: string[] = [];
  let last: unknown;
  let type: string | undefined;
  for (const hop of hops) {
    const v = await valueOf(hop.subject, outcome);
    if (!v.ok) return { lines, problem: `${hop.label}: ${v.error}` };
    last = v.value;
    type = hop.subject.type;
    lines.push(
      Array.isArray(v.value)
        ? `${capitalise(hop.label)} (${v.value.length}): ${v.value.map(describe).join(", ") || "none"}.`
        : `${capitalise(hop.label)}: ${describe(v.value)}.`,
    );
  }
  return { lines, last, ...(type ? { type } : {}) };
}

async function valueOf(
  subject: Subject,
  outcome: (step: string) => Promise<Outcome>,
): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  if ("entity" in subject) return { ok: true, value: { id: subject.entity.id, name: subject.entity.name } };
  return resolveRef(subject.ref, outcome);
}

async function renderPart(
  part: Part,
  outcome: (step: string) => Promise<Outcome>,
): Promise<{ text: string; problem?: string; focus?: PlanRun["focus"] }> {
  if (part.kind === "problem") {
    const hops = await renderHops(part.hops, outcome);
    return { text: [...hops.lines, part.message].join(" "), problem: part.message };
  }
  if (part.kind === "ask") {
    const o = await outcome(part.step);
    if (!o.ok) return { text: `${part.agent} could not answer "${part.clause}": ${o.error}`, problem: o.error };
    const { answer, sources } = (o.structured ?? {}) as { answer?: unknown; sources?: unknown };
    const text = typeof answer === "string" ? answer : resultText(o.result);
    // An agent that answers from none of its sources (its help text, "the documents do not
    // cover that") did not answer: said so, not passed off as the answer.
    if (Array.isArray(sources) && sources.length === 0) {
      const problem = `${part.agent} has no answer from its data`;
      return { text: `${part.agent} could not answer "${part.clause}" from its data. It says: ${text}`, problem };
    }
    return { text };
  }
  const hops = await renderHops(part.hops, outcome);
  const focus = focusOf(hops.last, hops.type);
  if (hops.problem) {
    const text = `${[...hops.lines].join(" ")} I could not answer "${part.clause}": ${hops.problem}.`.trim();
    return { text, problem: hops.problem };
  }
  if (part.kind === "identity") return { text: hops.lines.join(" "), ...(focus ? { focus } : {}) };
  if (part.kind === "attribute") {
    const o = await outcome(part.step);
    if (!o.ok) return { text: `${hops.lines.join(" ")} I could not read ${part.label}'s record: ${o.error}`.trim(), problem: o.error };
    let v: unknown = o.structured;
    for (const k of part.attribute.path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
    const field = part.attribute.field.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
    const text =
      v === undefined ? `${capitalise(part.label)} has no ${field} on record.` : `${capitalise(part.label)}'s ${field}: ${describe(v)}.`;
    return { text: [...hops.lines, text].join(" "), ...(focus ? { focus } : {}) };
  }
  const texts: string[] = [];
  let problem: string | undefined;
  for (const id of part.steps) {
    const o = await outcome(id);
    if (o.ok) texts.push(renderResult(o.result, o.structured, part));
    else {
      problem = o.error;
      texts.push(`Could not answer "${part.clause}": ${o.error}`);
    }
  }
  if (part.compare && !problem) texts.push(await compared(part, outcome));
  return { text: [...hops.lines, ...texts].join("\n"), ...(problem ? { problem } : {}), ...(focus ? { focus } : {}) };
}

/** "Bob Okafor has the highest net: 11813.18 (Carmen Alvarez: 10328.36)." */
async function compared(part: Extract<Part, { kind: "result" }>, outcome: (step: string) => Promise<Outcome>): Promise<string> {
  const path = part.fields![0]!;
  const values: { label: string; value: number }[] = [];
  for (const [i, id] of part.steps.entries()) {
    const o = await outcome(id);
    let v: unknown = o.ok ? o.structured : undefined;
    for (const k of path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
    if (typeof v !== "number") return `I could not compare ${fieldWords(path.at(-1)!)}: ${part.compare!.labels[i]} has no number for it.`;
    values.push({ label: part.compare!.labels[i] ?? id, value: v });
  }
  const sorted = [...values].sort((a, b) => (part.compare!.order === "max" ? b.value - a.value : a.value - b.value));
  const [top, ...rest] = sorted;
  const word = part.compare!.order === "max" ? "highest" : "lowest";
  if (rest.some((r) => r.value === top!.value)) return `They have the same ${fieldWords(path.at(-1)!)}: ${top!.value}.`;
  return `${top!.label} has the ${word} ${fieldWords(path.at(-1)!)}: ${top!.value} (${rest.map((r) => `${r.label}: ${r.value}`).join(", ")}).`;
}

/**
 * A result in words. An agent that answers in sentences is quoted; one whose text is a raw
 * record (JSON) is answered with the fields the question asked for, or its record's fields
 * named, about whom or what the part asked.
 */
function renderResult(result: CallToolResult, structured: unknown, part: Extract<Part, { kind: "result" }>): string {
  const text = resultText(result);
  if (!/^\s*[[{]/.test(text) || !structured || typeof structured !== "object") return text;
  const about = part.about ? `${part.about}'s ` : "";
  const root = structured as Record<string, unknown>;
  if (part.fields?.length) {
    const lines = part.fields.map((path) => {
      const [k, f] = path as [string, string | undefined];
      const v = root[k];
      const label = `${about}${fieldWords(k)}${f ? ` ${fieldWords(f)}` : ""}`;
      if (Array.isArray(v) && f)
        return `${capitalise(label)} (${v.length}): ${v.map((x) => `${firstScalar(x)} ${scalar((x as Record<string, unknown>)[f])}`).join("; ") || "none"}.`;
      return `${capitalise(label)}: ${f ? scalar((v as Record<string, unknown> | undefined)?.[f]) : scalar(v)}.`;
    });
    return lines.join("\n");
  }
  return Object.entries(root)
    .map(([k, v]) => {
      if (Array.isArray(v)) return `${capitalise(`${about}${fieldWords(k)}`)} (${v.length}): ${v.map(record).join("; ") || "none"}.`;
      return `${capitalise(`${about}${fieldWords(k)}`)}: ${record(v)}.`;
    })
    .join("\n");
}

function fieldWords(field: string): string {
  return field
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .replace(/_/g, " ")
    .toLowerCase();
}

function scalar(v: unknown): string {
  if (v === undefined || v === null) return "none on record";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function firstScalar(v: unknown): string {
  if (!v || typeof v !== "object") return scalar(v);
  return String(Object.values(v).find((x) => typeof x === "string" || typeof x === "number") ?? "");
}

/** A record's scalar fields, named ("model: Dell XPS 15, os: Windows"). */
function record(v: unknown): string {
  if (!v || typeof v !== "object") return scalar(v);
  return Object.entries(v)
    .filter(([, x]) => x === null || typeof x !== "object")
    .map(([k, x]) => `${fieldWords(k)}: ${scalar(x)}`)
    .join(", ");
}

function focusOf(v: unknown, type: string | undefined): PlanRun["focus"] {
  if (type && v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (typeof o["id"] === "string" && typeof o["name"] === "string") return { type, id: o["id"], name: o["name"] };
  }
  return undefined;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
