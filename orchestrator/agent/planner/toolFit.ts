import { tokenize } from "../../../src/text/tokenize.ts";
import type { Candidate, MeshModel } from "./model.ts";
import type { Target } from "./targets.ts";
import { expand, SELECTORS } from "./thesaurus.ts";
import type { SpeechAct } from "./speechAct.ts";
import { fieldWords, tokens as wordsOf } from "./language.ts";
import type { Builder } from "./builder.ts";
import type { Chain } from "./chains.ts";
import { fill } from "./arguments.ts";
import { askBeforeActing, focusAfter, needs, readAttribute } from "./parts.ts";
import type { ClauseReading } from "./reading.ts";
import type { ClauseOutcome, Focus, Hop } from "./planTypes.ts";

// The tool or field that answers a clause about the things it names, ranked by BM25 over the
// tools' names, descriptions and parameters (model.ts), and its call for each of them.

/** Relevance below this sends a clause to an agent's `ask` instead of a tool. */
export const MIN_TOOL_SCORE = 1.2;

/** A ranked tool or field, and the type of the things the clause names that it is about. */
export interface Fit {
  type: string;
  candidate: { candidate: Candidate; score: number };
}

/** The clause's chains by the type they end in, and the best tool or field for any of those types. */
export function bestFit(model: MeshModel, r: ClauseReading): { byType: Map<string, Chain[]>; best: Fit | undefined } {
  const byType = new Map<string, Chain[]>();
  for (const c of r.chains) byType.set(c.type, [...(byType.get(c.type) ?? []), c]);
  let best: Fit | undefined;
  for (const [type, list] of byType) {
    const top = bestOfType(model, r, type, list);
    if (top && (!best || top.score > best.candidate.score)) best = { type, candidate: top };
  }
  return { byType, best };
}

/** The best tool or field about the clause's subjects of one type. */
function bestOfType(model: MeshModel, r: ClauseReading, type: string, list: readonly Chain[]): Fit["candidate"] | undefined {
  const person = model.personType;
  // Named, or asked who is in it ("who works in Maya Cohen's department"): a search tool may look it up by its name.
  const named = list.some((c) => "entity" in c.subject && c.relations.length === 0) || (r.asksWho && type !== person);
  // A document named beside someone is what is asked about them ("how much parental leave is
  // Hugo Martin entitled to?"): its name's words count toward the tools for that someone.
  const topics = r.chains
    .filter((c) => c.type !== type && c.relations.length === 0 && model.readOnlyBy(c.type) === 1)
    .map((c) => c.subject.label.toLowerCase());
  const ranked = model.rank(
    topics.length ? expand([...r.rest, ...topics, ...(r.asksWho ? [person!] : [])].join(" ")) : r.query,
    type,
    named,
    r.mayChange,
  );
  // A search tool looks a named thing up only in its own agent's data (hr's find_employee does not find a document).
  const knownBy = new Set(list.flatMap((c) => ("entity" in c.subject ? c.subject.entity.agents : [])));
  return preferAsked(
    ranked.filter(
      (x) =>
        x.candidate.kind !== "tool" ||
        x.candidate.target.entityParams.length > 0 ||
        knownBy.size === 0 ||
        knownBy.has(x.candidate.target.agent),
    ),
    r.act,
  );
}

/**
 * The clause answered by the best fit, when it fits well enough: a field of the subject's
 * record, or the tool called once for each subject of its type (compared, when asked).
 */
export function callBestFit(model: MeshModel, b: Builder, r: ClauseReading, fit: ReturnType<typeof bestFit>): ClauseOutcome | undefined {
  let best = fit.best;
  // A weak fit is no fit: a tool none of whose words is a thing the clause asks about ("the
  // newest hire in Sales" is not Sales' newest expenses) does not answer it.
  if (best?.candidate.candidate.kind === "tool" && weakFit(model, best.candidate.candidate.target, r.content)) best = undefined;
  if (!best || best.candidate.score < MIN_TOOL_SCORE) return undefined;
  const { candidate, type } = best;
  const subjects = fit.byType.get(type)!;
  if (candidate.candidate.kind === "attribute") return readAttribute(model, b, r.clause, subjects[0]!, candidate.candidate.attribute);
  const target = candidate.candidate.target;
  if (target.sideEffect && r.act.kind !== "request") return askBeforeActing(target, r.act);
  return callForEach(
    b,
    r,
    target,
    subjects,
    r.chains.filter((c) => c.type !== type),
  );
}

/** One call of `target` per subject (the other things named fill its other parameters). */
function callForEach(b: Builder, r: ClauseReading, target: Target, subjects: readonly Chain[], others: readonly Chain[]): ClauseOutcome {
  const { clause } = r;
  const hops: Hop[] = [];
  const made: string[] = [];
  let lastFocus: Focus | undefined;
  for (const chain of subjects) {
    const f = b.follow(chain);
    hops.push(...f.hops);
    lastFocus = focusAfter(chain, f.hops);
    const filled = fill(
      target,
      clause,
      f.subject,
      others.map((c) => b.follow(c).subject),
      b,
    );
    if ("missing" in filled) {
      return {
        decision: "plan",
        part: {
          kind: "problem",
          clause,
          hops,
          agent: target.agent,
          message: `${needs(target, filled.missing)} Say it in the question, e.g. with an employee's name or id.`,
        },
        candidates: [],
      };
    }
    made.push(
      b.call(
        target.agent,
        target.tool.name,
        filled.args,
        `${(target.tool.title ?? target.tool.name).toLowerCase()} for ${f.subject.label}`,
        target.sideEffect,
      ),
    );
  }
  // "Who takes home more, Bob or Carmen?": the same field of two or more, compared.
  const order = made.length >= 2 ? comparison(clause) : undefined;
  const fields = resultFields(target, r.content, made.length === 1 ? subjects.at(-1)?.subject.label : undefined);
  const compare =
    order && fields.fields?.length === 1 ? { compare: { order, labels: subjects.map((c) => b.follow(c).subject.label) } } : {};
  return {
    decision: "plan",
    part: { kind: "result", clause, hops, steps: made, ...fields, ...compare },
    ...(lastFocus ? { focus: lastFocus } : {}),
    candidates: [],
  };
}

/**
 * The best candidate; for a request to act, the best tool that does the action asked for (a
 * request to raise a ticket is not answered by listing tickets), when one fits at all.
 */
export function preferAsked<T extends { candidate: Candidate; score: number }>(ranked: readonly T[], act: SpeechAct): T | undefined {
  if (act.kind === "request") {
    const acting = ranked.find((r) => r.candidate.kind === "tool" && r.candidate.target.sideEffect);
    if (acting && acting.score >= MIN_TOOL_SCORE) return acting;
  }
  return ranked[0];
}

/**
 * The fields of a tool's output the clause asks for ("when was … bought" → `purchased`, "the
 * status of …" → `status`): output-schema leaves (one level into objects and list items) whose
 * name or description shares a word with the clause, the tool's own name words set aside.
 */
export function resultFields(
  target: Target,
  content: readonly string[],
  about: string | undefined,
): { fields?: string[][]; about?: string } {
  // Words the tool's name says, and enum values (filters the arguments took), are not fields asked for.
  const enums = Object.values(target.properties).flatMap((p) => (p.enum ?? []).map((v) => String(v).replace(/_/g, " ")));
  const own = new Set(tokenize(`${target.tool.name.replace(/_/g, " ")} ${target.tool.title ?? ""} ${enums.join(" ")}`));
  const said = tokenize(expand(content.join(" ")));
  const enumWords = new Set(tokenize(enums.join(" ")));
  const out = (target.tool.outputSchema ?? {}) as {
    properties?: Record<
      string,
      {
        properties?: Record<string, { description?: string }>;
        items?: { properties?: Record<string, { description?: string }> };
        description?: string;
      }
    >;
  };
  const leaves: { path: string[]; words: string[] }[] = [];
  for (const [k, v] of Object.entries(out.properties ?? {})) {
    const inner = v.properties ?? v.items?.properties;
    if (!inner) leaves.push({ path: [k], words: tokenize(`${fieldWords(k)} ${v.description ?? ""}`) });
    else
      for (const [f, fs] of Object.entries(inner))
        leaves.push({ path: [k, f], words: tokenize(`${fieldWords(f)} ${fs.description ?? ""}`) });
  }
  // Scored by how often the clause (with its thesaurus words) says each of the field's words.
  const match = (asked: string[], from = leaves) => {
    const scored = from
      .map((l) => ({ ...l, score: [...new Set(l.words)].reduce((n, w) => n + asked.filter((a) => a === w).length, 0) }))
      .filter((l) => l.score > 0);
    const best = Math.max(0, ...scored.map((l) => l.score));
    return scored.filter((l) => l.score === best).map((l) => l.path);
  };
  // The tool's own name words first set aside ("ticket" is not the field asked for), unless only they name one ("net" of compute_net_pay).
  let fields = match(said.filter((t) => !own.has(t)));
  if (fields.length === 0)
    fields = match(
      said.filter((t) => !enumWords.has(t)),
      leaves.filter((l) => l.path.length === 1),
    );
  return { ...(fields.length ? { fields } : {}), ...(about ? { about } : {}) };
}

/**
 * A comparison the clause asks for, read with wink-nlp: a comparative or superlative ("more",
 * "higher", "the most", "less", "lowest"): which end is asked for.
 */
function comparison(clause: string): "max" | "min" | undefined {
  for (const t of wordsOf(clause)) {
    if (!["ADJ", "ADV"].includes(t.pos)) continue;
    if (/^(less|fewer|least|lower|lowest|smaller|smallest|cheaper|cheapest|shorter|shortest)$/.test(t.normal)) return "min";
    if (/^(more|most)$/.test(t.normal) || (t.lemma !== t.normal && /(er|est)$/.test(t.normal))) return "max";
  }
  return undefined;
}

/**
 * A weak fit: no word of the clause (with what the thesaurus adds) that names a thing is a word
 * of the tool, while one is a word of another agent's tools ("hire" of hr's records, asked with
 * finance's "newest expenses").
 */
function weakFit(model: MeshModel, target: Target, content: readonly string[]): boolean {
  const nouns = wordsOf(content.join(" ")).filter((t) => t.pos === "NOUN");
  if (nouns.length === 0) return false;
  // Words that order a list ("newest") say nothing of what is listed.
  const topical = content.filter((w) => !SELECTORS.some((x) => x.re.test(w)));
  if (tokenize(expand(topical.join(" "))).some((w) => target.terms.has(w))) return false;
  const elsewhere = model.targets.filter((t) => t.agent !== target.agent);
  return nouns.some((n) =>
    tokenize(n.normal).some(
      (w) =>
        elsewhere.some((t) => t.terms.has(w)) ||
        model.attributes.some((a) => a.agent !== target.agent && tokenize(fieldWords(a.field)).includes(w)),
    ),
  );
}
