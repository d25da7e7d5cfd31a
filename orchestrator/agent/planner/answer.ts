import type { CallToolResult } from "@modelcontextprotocol/client";
import { resultText } from "../../../src/protocol/results.ts";
import { fieldWords } from "./language.ts";
import type { Hop, Part, Subject } from "./planTypes.ts";
import { resolveRef, type OutcomeOf } from "./outcomes.ts";

// A run's answer in words: each part of the plan said from its steps' outcomes (the hops that
// led there, an agent's own answer, a field of a record, a tool's result, a comparison), and
// what a part could not answer said as such.

/** The entity an answer ends on, for a follow-up ("and her manager?"). */
export type AnswerFocus = { type: string; id: string; name: string };

type ResultPart = Extract<Part, { kind: "result" }>;

/** Each part in words, the parts not answered (and why), and the entity the last one that names one ends on. */
export async function renderParts(
  parts: readonly Part[],
  outcome: OutcomeOf,
): Promise<{ lines: string[]; unanswered: string[]; focus: AnswerFocus | undefined }> {
  const lines: string[] = [];
  const unanswered: string[] = [];
  let focus: AnswerFocus | undefined;
  for (const part of parts) {
    const r = await renderPart(part, outcome);
    lines.push(r.text);
    if (r.problem) unanswered.push(`${part.clause}: ${r.problem}`);
    focus = r.focus ?? focus;
  }
  return { lines, unanswered, focus };
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

async function renderHops(hops: Hop[], outcome: OutcomeOf): Promise<{ lines: string[]; problem?: string; last?: unknown; type?: string }> {
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

async function valueOf(subject: Subject, outcome: OutcomeOf): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  if ("entity" in subject) return { ok: true, value: { id: subject.entity.id, name: subject.entity.name } };
  return resolveRef(subject.ref, outcome);
}

/** One part in words; `problem`: why it is not answered; `focus`: the entity it ends on. */
async function renderPart(part: Part, outcome: OutcomeOf): Promise<{ text: string; problem?: string; focus?: AnswerFocus }> {
  if (part.kind === "problem") {
    const hops = await renderHops(part.hops, outcome);
    return { text: [...hops.lines, part.message].join(" "), problem: part.message };
  }
  if (part.kind === "ask") return renderAsk(part, outcome);
  const hops = await renderHops(part.hops, outcome);
  const focus = focusOf(hops.last, hops.type);
  if (hops.problem) {
    const text = `${[...hops.lines].join(" ")} I could not answer "${part.clause}": ${hops.problem}.`.trim();
    return { text, problem: hops.problem };
  }
  if (part.kind === "identity") return { text: hops.lines.join(" "), ...(focus ? { focus } : {}) };
  if (part.kind === "attribute") return renderAttribute(part, hops.lines, focus, outcome);
  return renderResults(part, hops.lines, focus, outcome);
}

/** An agent's own answer to the clause; one from none of its sources is not passed off as the answer. */
async function renderAsk(part: Extract<Part, { kind: "ask" }>, outcome: OutcomeOf): Promise<{ text: string; problem?: string }> {
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

/** One field of a subject's record ("Rosa Moreno's department: Engineering."), after the hops that led to it. */
async function renderAttribute(
  part: Extract<Part, { kind: "attribute" }>,
  hopLines: readonly string[],
  focus: AnswerFocus | undefined,
  outcome: OutcomeOf,
): Promise<{ text: string; problem?: string; focus?: AnswerFocus }> {
  const o = await outcome(part.step);
  if (!o.ok) return { text: `${hopLines.join(" ")} I could not read ${part.label}'s record: ${o.error}`.trim(), problem: o.error };
  let v: unknown = o.structured;
  for (const k of part.attribute.path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
  const field = part.attribute.field.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  const text =
    v === undefined ? `${capitalise(part.label)} has no ${field} on record.` : `${capitalise(part.label)}'s ${field}: ${describe(v)}.`;
  return { text: [...hopLines, text].join(" "), ...(focus ? { focus } : {}) };
}

/** Each step's result in words (and the comparison asked for), after the hops that led to them. */
async function renderResults(
  part: ResultPart,
  hopLines: readonly string[],
  focus: AnswerFocus | undefined,
  outcome: OutcomeOf,
): Promise<{ text: string; problem?: string; focus?: AnswerFocus }> {
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
  return { text: [...hopLines, ...texts].join("\n"), ...(problem ? { problem } : {}), ...(focus ? { focus } : {}) };
}

/** "Bob Okafor has the highest net: 11813.18 (Carmen Alvarez: 10328.36)." */
async function compared(part: ResultPart, outcome: OutcomeOf): Promise<string> {
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
function renderResult(result: CallToolResult, structured: unknown, part: ResultPart): string {
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

function focusOf(v: unknown, type: string | undefined): AnswerFocus | undefined {
  if (type && v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (typeof o["id"] === "string" && typeof o["name"] === "string") return { type, id: o["id"], name: o["name"] };
  }
  return undefined;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
