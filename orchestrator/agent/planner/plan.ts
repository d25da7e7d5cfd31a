import { Bm25IntentClassifier, type Candidate as RouteCandidate } from "../router/classifier.ts";
import type { Entity, MeshModel } from "./model.ts";
import { expand } from "./thesaurus.ts";
import { speechAct } from "./speechAct.ts";
import { Builder } from "./builder.ts";
import { readClause, questionOrder, splitClauses, type ClauseReading } from "./reading.ts";
import { askAgent } from "./parts.ts";
import { bestFit, callBestFit } from "./toolFit.ts";
import { aboutNamed, askedOfRecord, notOffered, unknownNamesProblem } from "./named.ts";
import { planUnnamed } from "./unnamed.ts";
import type { ClauseOutcome, Focus, Part, Step, Subject } from "./planTypes.ts";

/** A question planned: its parts, the steps that answer them, and whether it was planned at all. */
export interface Plan {
  question: string;
  decision: "plan" | "ambiguous" | "none";
  message?: string;
  parts: Part[];
  steps: Step[];
  /** Steps that change something: run only once the user confirms. */
  effects: string[];
  /** The agent a person would say answered (the first part's last agent). */
  primary?: string;
  /** Who the conversation is about afterwards ("and her manager?"). */
  focus?: Subject;
  candidates: RouteCandidate[];
}

/** What planning a question knows besides the question. */
export interface PlanOptions {
  /** The entity the conversation was about (a follow-up's "her", "his", "they"). */
  focus?: Entity;
  /** What "today" is for relative dates ("next Monday"). @default new Date() */
  now?: Date;
}

/**
 * Turns a question into a plan of tool calls across the mesh's agents, with no model: it
 * finds the entities the question names (from the agents' vocabularies), follows the
 * relations it asks about (from the tools' output schemas: X's manager, Y's newest direct
 * report, Z's department), picks the tool or field that answers what is asked (BM25 over
 * the tools' names, descriptions and parameters, with a thesaurus) and fills its arguments
 * from the question. What it cannot place goes to the best agent's `ask`; what it cannot
 * resolve is said, never guessed.
 */
export class Planner {
  private readonly router = new Bm25IntentClassifier();

  plan(model: MeshModel, question: string, options: PlanOptions = {}): Plan {
    const steps: Step[] = [];
    const parts: Part[] = [];
    const b = new Builder(steps, options.now ?? new Date());
    const start: Subject | undefined = options.focus
      ? { type: options.focus.type, label: options.focus.name, entity: options.focus }
      : undefined;
    let focus: Focus = start ? { last: start, personal: start } : {};
    let candidates: RouteCandidate[] = [];
    const clauses = splitClauses(question).map(questionOrder);
    // Statements beside a question or request are its context, not parts to answer: "I am
    // Ines Silva" says who "I" is; "I need a new charger" is what a ticket would say.
    const acts = clauses.map((c) => speechAct(c).kind);
    const context = acts.some((k) => k !== "statement");
    for (const [i, clause] of clauses.entries()) {
      if (!context || acts[i] !== "statement") continue;
      const who = /^\s*(?:i am|i'm|im|this is|my name is)\s+(.+?)[.!?]*$/i.exec(clause)?.[1];
      const person = who ? model.surfaces.find((x) => x.text === who.toLowerCase() && x.entity.type === model.personType) : undefined;
      if (person) focus = { ...focus, me: { type: person.entity.type, label: person.entity.name, entity: person.entity } };
      else b.context.push(clause);
    }
    for (const [ci, clause] of clauses.entries()) {
      if (context && acts[ci] === "statement") continue;
      const r = this.planClause(model, b, clause, focus);
      if (r.decision !== "plan") {
        if (parts.length === 0 && clauses.filter((_c, k) => !context || acts[k] !== "statement").length === 1)
          return { question, decision: r.decision, message: r.message, parts: [], steps: [], effects: [], candidates: r.candidates };
        parts.push({ kind: "problem", clause, hops: [], message: r.message });
        continue;
      }
      candidates = candidates.length ? candidates : r.candidates;
      parts.push(r.part);
      focus = { ...focus, last: r.focus?.last ?? focus.last, personal: r.focus?.personal ?? focus.personal };
    }
    const first = parts[0];
    const primary = first ? partAgent(first, steps) : undefined;
    return {
      question,
      decision: "plan",
      parts,
      steps,
      effects: steps.filter((s) => s.sideEffect).map((s) => s.id),
      ...(primary ? { primary } : {}),
      ...(focus.last ? { focus: focus.last } : {}),
      candidates,
    };
  }

  /**
   * One clause: read it, then the first way of answering it that fits, in this order: a name
   * no agent knows; a field of a record; what it names alone; the tool that fits best; data no
   * agent holds; with nothing named, a tool, a document or one agent's tools; else the
   * specialist the router picks.
   */
  private planClause(model: MeshModel, b: Builder, clause: string, focus: Focus): ClauseOutcome {
    const r = readClause(model, clause, focus);
    if (r.unknown.length > 0 && r.chains.length === 0) return unknownNamesProblem(model, r);
    const fit = bestFit(model, r);
    return (
      askedOfRecord(model, b, r) ??
      aboutNamed(model, b, r) ??
      callBestFit(model, b, r, fit) ??
      notOffered(model, r) ??
      (r.chains.length === 0 ? planUnnamed(model, b, r) : undefined) ??
      this.askSpecialist(model, b, r)
    );
  }

  /**
   * No tool fits well enough: the specialist's own `ask` answers, chosen by who knows the
   * entities named, else by the agents' profiles.
   */
  private askSpecialist(model: MeshModel, b: Builder, r: ClauseReading): ClauseOutcome {
    const { chains, clause } = r;
    const routable = model.routable();
    const named = [...new Set(chains.flatMap((c) => ("entity" in c.subject ? c.subject.entity.agents : [])))].filter((a) =>
      routable.some((x) => x.name === a),
    );
    const ownersOfAll =
      chains.length > 0 ? named.filter((a) => chains.every((c) => !("entity" in c.subject) || c.subject.entity.agents.includes(a))) : [];
    let agent: string | undefined = ownersOfAll.length === 1 ? ownersOfAll[0] : undefined;
    let candidates: RouteCandidate[] = [];
    if (!agent) {
      const decision = this.router.classify(
        expand(clause),
        routable.map((a) => ({ ...a, description: `${a.description ?? ""} ${vocabularyText(a)}` })),
      );
      candidates = decision.candidates;
      if (decision.kind !== "route") {
        const restricted = ownersOfAll.length > 1 ? decision.candidates.filter((c) => ownersOfAll.includes(c.agent)) : [];
        if (restricted.length > 0 && (!restricted[1] || restricted[1].score < restricted[0]!.score * 0.8)) agent = restricted[0]!.agent;
        else return { decision: decision.kind, message: decision.message, candidates };
      } else agent = decision.agent;
    }
    return askAgent(b, clause, agent, candidates);
  }
}

/**
 * Whether a message asks the mesh to act in any of its clauses (speechAct.ts): the only messages
 * for which a tool that changes state may be planned, offered to a model, or confirmed.
 */
export function asksToAct(message: string): boolean {
  return splitClauses(message).some((c) => speechAct(c).kind === "request");
}

/** The agent that gives a part its answer: its last step's, or the one a problem is about. */
export function partAgent(part: Part, steps: readonly Step[]): string | undefined {
  const ids =
    part.kind === "result" ? part.steps : "step" in part ? [part.step] : part.hops.length ? [stepOf(part.hops.at(-1)!.subject)] : [];
  const step = steps.find((s) => s.id === ids.at(-1));
  return step?.agent ?? (part.kind === "problem" ? part.agent : undefined);
}

function stepOf(subject: Subject): string | undefined {
  return "ref" in subject ? subject.ref.step : undefined;
}

function vocabularyText(a: { vocabulary: readonly { name: string; type: string }[] }): string {
  const types = [...new Set(a.vocabulary.map((v) => v.type))];
  const docs = a.vocabulary.filter((v) => v.type !== "employee").map((v) => v.name);
  return `${types.join(" ")} ${docs.join(" ")}`;
}
