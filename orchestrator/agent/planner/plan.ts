import { stem, STOPWORDS, tokenize } from "../../../src/text/tokenize.ts";
import { Bm25IntentClassifier, type Candidate as RouteCandidate } from "../router/classifier.ts";
import { idPattern, type Attribute, type Candidate, type Entity, type MeshModel, type Relation, type Target } from "./model.ts";
import { expand, IDENTITY_WORDS, SELECTORS } from "./thesaurus.ts";
import { asksFor, speechAct, type SpeechAct } from "./speechAct.ts";
import { distance } from "fastest-levenshtein";
import { amounts, dates, lemmaOf, tokens as wordsOf } from "./language.ts";

/** Where a step's argument comes from when an earlier step's result decides it. */
export interface Ref {
  step: string;
  path: string[];
  /** Of a list: the member with the latest (max) or earliest (min) value of this field. */
  pick?: { field: string; order: "max" | "min" };
}
export type Arg = { $ref: Ref } | string | number | boolean;

export interface Step {
  id: string;
  agent: string;
  tool: string;
  args: Record<string, Arg>;
  /** Steps whose results this one needs (the rest run in parallel). */
  after: string[];
  why: string;
  sideEffect: boolean;
}

/** Who or what a part of the question is about: a named entity, or one an earlier step finds. */
export type Subject = { type: string; label: string } & ({ entity: Entity } | { ref: Ref; list: boolean });

export interface Hop {
  label: string;
  subject: Subject;
}

/** How one part of the question is answered once the steps have run. */
export type Part =
  /** `fields`: paths in the result to the fields the clause asks for (a tool whose text is a raw record is answered with them). */
  | {
      kind: "result";
      clause: string;
      hops: Hop[];
      steps: string[];
      fields?: string[][];
      about?: string;
      /** Compare the one field across the steps (one per subject, `labels` in order): who has the most (max) or least (min). */
      compare?: { order: "max" | "min"; labels: string[] };
    }
  | { kind: "attribute"; clause: string; hops: Hop[]; step: string; attribute: Attribute; label: string }
  | { kind: "identity"; clause: string; hops: Hop[] }
  | { kind: "ask"; clause: string; step: string; agent: string }
  | { kind: "problem"; clause: string; hops: Hop[]; message: string; agent?: string };

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

export interface PlanOptions {
  /** The entity the conversation was about (a follow-up's "her", "his", "they"). */
  focus?: Entity;
  /** What "today" is for relative dates ("next Monday"). @default new Date() */
  now?: Date;
}

/** Relevance below this sends a clause to an agent's `ask` instead of a tool. */
export const MIN_TOOL_SCORE = 1.2;
/** A tool this relevant, twice the next, answers a question that names no one. */
export const STRONG_TOOL_SCORE = 5;
/** A document's name this relevant to a question's words sends it to the document's agent. */
export const MIN_WORD_SCORE = 1.5;

const PERSONAL_POSSESSIVE = /\b(his|her|their)\b/gi;
const PERSONAL = /\b(he|she|they|them|him)\b/gi;
const POSSESSIVE = /\bits\b/gi;
const PRONOUN = /\bit\b/gi;

/** What pronouns refer to: "it"/"its" the last thing answered about, "he"/"her"/"they" the last person-like subject (of the type the question named). */
interface Focus {
  last?: Subject;
  personal?: Subject;
  /** Who "I", "me" and "my" are, when the message said so ("I am Ines Silva"). */
  me?: Subject & { entity: Entity };
}
const SYNONYM: Record<string, string> = { boss: "manager", supervisor: "manager", team: "reports", reportees: "reports" };
const WORD_NUMBERS: Record<string, number> = {
  a: 1,
  an: 1,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
};
/** Words for one member of a list ("the newest member of the team", "the longest-serving person"). */
const ELEMENT_WORDS = new Set(["member", "members", "person", "one", "employee", "people", "report"]);
const DURATION = /\b(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten) (?:working |business |full )?days?\b/i;

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

  private planClause(
    model: MeshModel,
    b: Builder,
    clause: string,
    focus: Focus,
  ):
    | { decision: "plan"; part: Part; focus?: Focus; candidates: RouteCandidate[] }
    | { decision: "ambiguous" | "none"; message: string; candidates: RouteCandidate[] } {
    const { tokens, mentions } = tokenizeClause(model, clause, focus);
    // Only a request to act may lead to a tool that changes state, and only to one whose own
    // verb is of the kind asked for; a clause that starts with a name is about it.
    const lead = tokens.find((t) => !/^(please|pls|kindly|hey|hi|ok|okay|so|now|also|then|just)$/.test(t));
    const act: SpeechAct = lead?.startsWith("⟨") ? { kind: "question" } : speechAct(clause);
    const mayChange = (t: Target) => asksFor(act, t.tool, t.actions);
    const unknown = unknownNames(clause, mentions, model);
    const chains = findChains(model, tokens, mentions);
    if (unknown.length > 0 && chains.length === 0) {
      return {
        decision: "plan",
        part: {
          kind: "problem",
          clause,
          hops: [],
          message: `I could not find ${unknown.map((u) => `"${u}"`).join(" or ")} in the mesh (no agent knows that name or id).`,
          agent: owners(model, "employee")[0],
        },
        candidates: [],
      };
    }
    const used = new Set(chains.flatMap((c) => c.tokens));
    const rest = tokens.filter((t, i) => !used.has(i) && !t.startsWith("⟨"));
    const content = rest.filter((t) => !IDENTITY_WORDS.test(t) && !STOPWORDS.has(t));
    // "Who …" asks for a person: with no person named, the people the mesh knows are the answer's kind.
    const person = model.personType;
    const asksWho =
      (/^\s*(who|whom|whose)\b/i.test(clause) || rest.some((t) => /^(people|persons|everyone|staff|employees|members)$/.test(t))) &&
      person !== undefined &&
      !chains.some((c) => c.type === person);
    const query = expand([...rest, ...(asksWho ? [person!] : [])].join(" "));

    // The subjects: the chains of the type the best tool or field is about.
    const byType = new Map<string, Chain[]>();
    for (const c of chains) byType.set(c.type, [...(byType.get(c.type) ?? []), c]);
    let best: { type: string; candidate: ReturnType<MeshModel["rank"]>[number] } | undefined;
    // A document named beside someone is what is asked about them ("how much parental leave is
    // Hugo Martin entitled to?"): its name's words count toward the tools for that someone.
    const topicWords = (type: string) =>
      chains
        .filter((c) => c.type !== type && c.relations.length === 0 && model.readOnlyBy(c.type) === 1)
        .map((c) => c.subject.label.toLowerCase());
    for (const [type, list] of byType) {
      // Named, or asked who is in it ("who works in Maya Cohen's department"): a search tool may look it up by its name.
      const named = list.some((c) => "entity" in c.subject && c.relations.length === 0) || (asksWho && type !== person);
      const topics = topicWords(type);
      const ranked = model.rank(
        topics.length ? expand([...rest, ...topics, ...(asksWho ? [person!] : [])].join(" ")) : query,
        type,
        named,
        mayChange,
      );
      // A search tool looks a named thing up only in its own agent's data (hr's find_employee does not find a document).
      const knownBy = new Set(list.flatMap((c) => ("entity" in c.subject ? c.subject.entity.agents : [])));
      const top = preferAsked(
        ranked.filter(
          (r) =>
            r.candidate.kind !== "tool" ||
            r.candidate.target.entityParams.length > 0 ||
            knownBy.size === 0 ||
            knownBy.has(r.candidate.target.agent),
        ),
        act,
      );
      if (top && (!best || top.score > best.candidate.score)) best = { type, candidate: top };
    }

    // "Is Olga Ivanova in Engineering?": a person and a thing their record names (a department):
    // the answer is that field of their record.
    if (content.length === 0 && chains.length === 2 && chains.every((c) => c.relations.length === 0)) {
      const who = chains.find((c) => c.type === person);
      const what = chains.find((c) => c !== who);
      const field = who && what ? model.attributes.find((a) => a.type === person && a.field === what.type) : undefined;
      if (who && field) return readAttribute(model, b, clause, who, field);
    }
    // "How many people are in X's team?": the list is the answer (its count is said with it).
    const last = chains.length === 1 ? chains[0]!.relations.at(-1) : undefined;
    const countOfList =
      /\bhow many\b/i.test(clause) &&
      last?.relation.list === true &&
      !last.pick &&
      content.every((w) => /^(many|number|count|total|in|on)$/.test(w));
    if (chains.length > 0 && (content.length === 0 || countOfList) && !asksWho) {
      const chain = chains[0]!;
      if (chain.relations.length > 0 || chains.length > 1) {
        // "Who is Rosa Moreno's manager?": the answer is who the relations lead to.
        const { hops } = b.follow(chain);
        return { decision: "plan", part: { kind: "identity", clause, hops }, focus: focusAfter(chain, hops), candidates: [] };
      }
      // A bare name known to one agent that answers in words ("Which public holidays do we
      // get?"): that agent tells about it. Known to several: ask which side is meant.
      // (Tools of several agents acting on it, as on a person hr, finance and a helpdesk all take: ask too.)
      const owner = "entity" in chain.subject ? chain.subject.entity.agents.filter((a) => model.routable().some((r) => r.name === a)) : [];
      const actors = new Set(model.targets.filter((t) => t.entityParams.some((p) => p.type === chain.subject.type)).map((t) => t.agent));
      if (owner.length === 1 && (actors.size < 2 || !/^\s*\p{Lu}[\p{L}'-]*(\s+\p{Lu}[\p{L}'-]*)*[?.!]*\s*$/u.test(clause))) {
        return { ...askAgent(b, clause, owner[0]!), focus: focusAfter(chain, []) };
      }
      const what = model.rank(expand(chain.subject.type), chain.subject.type).slice(0, 4);
      const agents = [
        ...new Set([
          ...("entity" in chain.subject ? chain.subject.entity.agents : []),
          ...what.map((w) => (w.candidate.kind === "tool" ? w.candidate.target.agent : w.candidate.attribute.agent)),
        ]),
      ].sort();
      return {
        decision: "ambiguous",
        message: `"${chain.subject.label}" is a ${chain.subject.type}${agents.length ? ` known to ${agents.join(" and ")}` : ""}. What would you like to know or do about it?`,
        candidates: agents.map((a) => ({ agent: a, score: 0, confidence: 0 })),
      };
    }

    // A weak fit is no fit: a tool none of whose words is a thing the clause asks about ("the
    // newest hire in Sales" is not Sales' newest expenses) does not answer it.
    if (best?.candidate.candidate.kind === "tool" && weakFit(model, best.candidate.candidate.target, content)) best = undefined;
    if (best && best.candidate.score >= MIN_TOOL_SCORE) {
      const { candidate } = best;
      const subjects = byType.get(best.type)!;
      if (candidate.candidate.kind === "attribute") return readAttribute(model, b, clause, subjects[0]!, candidate.candidate.attribute);
      const target = candidate.candidate.target;
      if (target.sideEffect && act.kind !== "request") return askBeforeActing(target, act);
      const others = chains.filter((c) => c.type !== best.type);
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
      const fields = resultFields(target, content, made.length === 1 ? subjects.at(-1)?.subject.label : undefined);
      const compare =
        order && fields.fields?.length === 1 ? { compare: { order, labels: subjects.map((c) => b.follow(c).subject.label) } } : {};
      return {
        decision: "plan",
        part: { kind: "result", clause, hops, steps: made, ...fields, ...compare },
        ...(lastFocus ? { focus: lastFocus } : {}),
        candidates: [],
      };
    }

    // About someone or something that several tools act on (an employee, a department), in
    // words no tool or field knows ("check the numbers for Bob"): a person would ask what is
    // wanted. (A document is read by one tool: a free question about it goes to its agent.)
    const manyWays = (type: string) => model.targets.filter((t) => t.entityParams.some((p) => p.type === type)).length >= 2;
    if (
      chains.length > 0 &&
      chains.every((c) => c.relations.length === 0 && manyWays(c.type)) &&
      model.rank(query, undefined).length === 0
    ) {
      const about = chains.map((c) => c.subject.label).join(" and ");
      // A question about data no agent holds ("What is Bob Okafor's shoe size?") is answered as
      // such, with what the agents do hold; a loose fragment ("numbers for Bob") is asked back.
      const wanted = content.filter((w) => w !== "'s").join(" ");
      const relationWord = content.some((w) => model.relations.some((r) => r.words.includes(stem(w))));
      // Only for a wh-question asking for a thing by its name (nouns: "shoe size", "phone
      // number"); a verb no tool knows ("spend", "drive") or a yes/no question is asked back.
      const nouns = wordsOf(wanted).every((t) => t.pos === "NOUN" || t.pos === "PROPN" || t.pos === "ADJ");
      if (wanted && !relationWord && nouns && /^\s*(what|which|when|where|whose)\b/i.test(clause)) {
        return {
          decision: "plan",
          part: {
            kind: "problem",
            clause,
            hops: [],
            message: `No agent in the mesh holds "${wanted}" for ${about}. What they hold about ${chains.length > 1 ? "them" : `${/^[aeiou]/i.test(chains[0]!.type) ? "an" : "a"} ${chains[0]!.type}`}: ${heldAbout(model, chains[0]!.type)}.`,
            ...(chains[0] && "entity" in chains[0].subject ? { agent: chains[0].subject.entity.agents[0] } : {}),
          },
          candidates: [],
        };
      }
      return {
        decision: "ambiguous",
        message: `What would you like to know or do about ${about}? Nothing the agents offer matches "${content.join(" ")}".`,
        candidates: [],
      };
    }

    const routable = model.routable();
    if (chains.length === 0) {
      // Nothing named, but a tool that needs no one in particular fits clearly ("run payroll for
      // 2026-12"): it is the answer, its arguments from the question (or asked for).
      // An id whose shape a tool's parameter gives ("ticket HD-2003"): the tool that fits best of those that take it.
      const byId = takesStatedId(model, clause);
      if (byId.length > 0) {
        const fits = model
          .rank(query, undefined, false, (t) => mayChange(t) || act.kind === "unclear")
          .filter((r) => r.candidate.kind === "tool" && byId.includes(r.candidate.target));
        const reads = byId.filter((t) => !t.sideEffect);
        const target = fits[0]?.candidate.kind === "tool" ? fits[0].candidate.target : reads.length === 1 ? reads[0] : undefined;
        if (target) {
          if (target.sideEffect && act.kind !== "request") return askBeforeActing(target, act);
          const filled = fill(target, clause, undefined, [], b);
          if ("args" in filled) {
            const id = Object.values(filled.args).find((v) => typeof v === "string" && byIdWord(v, clause)) as string | undefined;
            const step = b.call(
              target.agent,
              target.tool.name,
              filled.args,
              `${(target.tool.title ?? target.tool.name).toLowerCase()}${id ? ` ${id}` : ""}`,
              target.sideEffect,
            );
            return {
              decision: "plan",
              part: { kind: "result", clause, hops: [], steps: [step], ...resultFields(target, content, id) },
              candidates: [],
            };
          }
          return {
            decision: "plan",
            part: { kind: "problem", clause, hops: [], agent: target.agent, message: needs(target, filled.missing) },
            candidates: [],
          };
        }
      }
      const ranked = model.rank(query, undefined, false, mayChange);
      const top = preferAsked(ranked, act);
      const second = ranked.find((r) => r !== top);
      if (
        top &&
        top.candidate.kind === "tool" &&
        top.candidate.target.entityParams.length === 0 &&
        top.score >= STRONG_TOOL_SCORE &&
        (!second || top.score >= second.score * 2)
      ) {
        const target = top.candidate.target;
        if (target.sideEffect && act.kind !== "request") return askBeforeActing(target, act);
        const filled = fill(target, clause, undefined, [], b);
        if ("args" in filled) {
          const step = b.call(
            target.agent,
            target.tool.name,
            filled.args,
            (target.tool.title ?? target.tool.name).toLowerCase(),
            target.sideEffect,
          );
          return {
            decision: "plan",
            part: { kind: "result", clause, hops: [], steps: [step], ...resultFields(target, content, undefined) },
            candidates: [],
          };
        }
        return {
          decision: "plan",
          part: {
            kind: "problem",
            clause,
            hops: [],
            agent: target.agent,
            message: needs(target, filled.missing),
          },
          candidates: [],
        };
      }
      // A document (or another thing one tool reads) whose name the question's words point to:
      // its agent answers ("where are my tax forms?" → the "Tax forms and certificates" document).
      const [doc, next] = model.findByWords(content.join(" "));
      const owner = doc?.entity.agents.find((a) => routable.some((r) => r.name === a));
      if (doc && owner && doc.score >= MIN_WORD_SCORE && (!next || doc.score >= next.score * 1.2)) {
        return askAgent(b, clause, owner);
      }
      // The tools that fit best, several of them, all belong to one agent ("the leave policy for
      // sick days": hr's leave tools): that agent answers, in its own words. (One tool alone is
      // too thin: "report a phishing email" is not about direct reports.)
      const near = top ? ranked.filter((r) => r.score >= top.score / 2) : [];
      const nearAgents = new Set(near.map((r) => (r.candidate.kind === "tool" ? r.candidate.target.agent : r.candidate.attribute.agent)));
      const only = nearAgents.size === 1 ? [...nearAgents][0]! : undefined;
      if (top && top.score >= STRONG_TOOL_SCORE && near.length >= 2 && only && routable.some((r) => r.name === only)) {
        return askAgent(b, clause, only);
      }
    }

    // No tool fits well enough: the specialist's own `ask` answers, chosen by who knows the
    // entities named, else by the agents' profiles.
    const named = [...new Set(chains.flatMap((c) => ("entity" in c.subject ? c.subject.entity.agents : [])))].filter((a) =>
      routable.some((r) => r.name === a),
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
 * A clause that reads as a question or an unclear request ("Can I book…?", "Close ticket HD-2005")
 * where the tool that fits would change something: ask, rather than act or guess.
 */
function askBeforeActing(target: Target, act: SpeechAct): { decision: "ambiguous"; message: string; candidates: RouteCandidate[] } {
  const what = (target.tool.title ?? target.tool.name.replace(/_/g, " ")).toLowerCase();
  const verb = "verb" in act ? act.verb : what.split(" ")[0];
  return {
    decision: "ambiguous",
    message: `Do you want me to ${what} (${target.agent}.${target.tool.name})? I change something only when asked to do it, e.g. "Please ${verb} …"; nothing was changed. If you are asking about it, please ask it as a question.`,
    candidates: [{ agent: target.agent, score: 0, confidence: 0 }],
  };
}

/**
 * The best candidate; for a request to act, the best tool that does the action asked for (a
 * request to raise a ticket is not answered by listing tickets), when one fits at all.
 */
function preferAsked<T extends { candidate: Candidate; score: number }>(ranked: readonly T[], act: SpeechAct): T | undefined {
  if (act.kind === "request") {
    const acting = ranked.find((r) => r.candidate.kind === "tool" && r.candidate.target.sideEffect);
    if (acting && acting.score >= MIN_TOOL_SCORE) return acting;
  }
  return ranked[0];
}

/** A clause handed to one agent's `ask`, in the user's words. */
function askAgent(
  b: Builder,
  clause: string,
  agent: string,
  candidates: RouteCandidate[] = [],
): { decision: "plan"; part: Part; candidates: RouteCandidate[] } {
  const step = b.call(agent, "ask", { question: clause }, `ask ${agent}`);
  return { decision: "plan", part: { kind: "ask", clause, step, agent }, candidates };
}

/** A clause answered by one field of a subject's record ("Rosa Moreno's department"). */
function readAttribute(
  model: MeshModel,
  b: Builder,
  clause: string,
  chain: Chain,
  attribute: Attribute,
): { decision: "plan"; part: Part; focus: Focus; candidates: RouteCandidate[] } {
  const { hops, subject } = b.follow(chain);
  const step = b.call(
    attribute.agent,
    attribute.tool,
    { [attribute.param]: b.arg(subject) },
    `read ${subject.label}'s ${words(attribute.field)}`,
  );
  // A field that is itself a thing the mesh knows (a department): "it" in the next clause is that.
  const after = focusAfter(chain, hops);
  const valueFocus: Focus | undefined = model.types.includes(attribute.field)
    ? {
        ...after,
        last: {
          type: attribute.field,
          label: `${subject.label}'s ${words(attribute.field)}`,
          ref: { step, path: attribute.path },
          list: false,
        },
      }
    : undefined;
  return {
    decision: "plan",
    part: { kind: "attribute", clause, hops, step, attribute, label: subject.label },
    focus: valueFocus ?? after,
    candidates: [],
  };
}

function byIdWord(v: string, clause: string): boolean {
  return clause.split(/[\s,;?!.:]+/).includes(v);
}

/** Tools with a required parameter whose id pattern a word of the clause has. */
function takesStatedId(model: MeshModel, clause: string): Target[] {
  const words = clause
    .split(/[\s,;?!:]+/)
    .map((w) => w.replace(/[.'’]+$/, ""))
    .filter((w) => /\d/.test(w) && /[A-Za-z]/.test(w));
  if (words.length === 0) return [];
  return model.targets.filter((t) =>
    t.required.some((r) => {
      const re = idPattern(t.properties[r]);
      return re !== undefined && words.some((w) => re.test(w));
    }),
  );
}

/**
 * The fields of a tool's output the clause asks for ("when was … bought" → `purchased`, "the
 * status of …" → `status`): output-schema leaves (one level into objects and list items) whose
 * name or description shares a word with the clause, the tool's own name words set aside.
 */
function resultFields(target: Target, content: readonly string[], about: string | undefined): { fields?: string[][]; about?: string } {
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
    if (!inner) leaves.push({ path: [k], words: tokenize(`${words(k)} ${v.description ?? ""}`) });
    else for (const [f, fs] of Object.entries(inner)) leaves.push({ path: [k, f], words: tokenize(`${words(f)} ${fs.description ?? ""}`) });
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
        model.attributes.some((a) => a.agent !== target.agent && tokenize(words(a.field)).includes(w)),
    ),
  );
}

/** What the mesh holds about things of a type, by agent: its record's fields and the tools that read it. */
function heldAbout(model: MeshModel, type: string): string {
  const byAgent = new Map<string, Set<string>>();
  const add = (agent: string, what: string) => (byAgent.get(agent) ?? byAgent.set(agent, new Set()).get(agent)!).add(what);
  for (const a of model.attributes) if (a.type === type) add(a.agent, words(a.field));
  for (const t of model.targets)
    if (
      !t.sideEffect &&
      t.entityParams.some((p) => p.type === type) &&
      !model.attributes.some((a) => a.tool === t.tool.name && a.agent === t.agent)
    )
      add(t.agent, (t.tool.title ?? t.tool.name.replace(/_/g, " ")).toLowerCase());
  return [...byAgent].map(([agent, what]) => `${agent}: ${[...what].slice(0, 10).join(", ")}`).join("; ");
}

/** What a tool still needs to be called, said with what each argument is. */
function needs(target: Target, missing: { name: string; description?: string }[]): string {
  const what = missing.map((m) => `${m.name}${m.description ? ` (${m.description})` : ""}`).join(", ");
  return `To ${(target.tool.title ?? target.tool.name).toLowerCase()} (${target.agent}.${target.tool.name}) I need ${what}.`;
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

/** After a chain: "it" is where it ends; "he/she/they" the last subject of the type the chain started from. */
function focusAfter(chain: Chain, hops: Hop[]): Focus {
  const subjects = [chain.subject, ...hops.map((h) => h.subject)];
  const personal = subjects.filter((s) => s.type === chain.subject.type && !("list" in s && s.list)).at(-1);
  return { last: subjects.at(-1)!, ...(personal ? { personal } : {}) };
}

function vocabularyText(a: { vocabulary: readonly { name: string; type: string }[] }): string {
  const types = [...new Set(a.vocabulary.map((v) => v.type))];
  const docs = a.vocabulary.filter((v) => v.type !== "employee").map((v) => v.name);
  return `${types.join(" ")} ${docs.join(" ")}`;
}

function owners(model: MeshModel, type: string): string[] {
  return [...new Set(model.entities.filter((e) => e.type === type).flatMap((e) => e.agents))];
}

function words(field: string): string {
  return field
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .replace(/_/g, " ")
    .toLowerCase();
}

/**
 * Whether a message asks the mesh to act in any of its clauses (speechAct.ts): the only messages
 * for which a tool that changes state may be planned, offered to a model, or confirmed.
 */
export function asksToAct(message: string): boolean {
  return splitClauses(message).some((c) => speechAct(c).kind === "request");
}

/**
 * A learner's question order, as a question: "How I can get…", "Where I find…" (no inversion,
 * no auxiliary) is "How can I get…", "Where can I find…".
 */
export function questionOrder(clause: string): string {
  return clause.replace(
    /^(\s*)(how|where|when)\s+(i|we)\s+(?:(can|could|should|may)\s+)?(?!am\b|was\b|will\b|do\b|did\b)(\w+)/i,
    (_m, sp: string, wh: string, who: string, modal: string | undefined, verb: string) => `${sp}${wh} ${modal ?? "can"} ${who} ${verb}`,
  );
}

/** Splits "X and how many…", "…, and what is…" into the questions they are. */
export function splitClauses(question: string): string[] {
  return (
    question
      // A question mark stays with its clause (it is part of the sentence's form: speechAct.ts).
      .split(
        /(?<=\?)\s+|;\s+|(?<=[a-z0-9)])\.\s+(?=[A-Z])|,?\s+and\s+(?=(?:what|how|who|where|when|which|whose|is|are|does|do|did|the|his|her|their|its|also|then|book|file|submit)\b)|,\s+(?=(?:what|how|who|where|when|which|(?:can|could|would|will) you|please)\b)/i,
      )
      .map((c) =>
        c
          .trim()
          .replace(/^and\s+/i, "")
          .replace(/[.!]+$/, "")
          .replace(/\s*\?+$/, "?"),
      )
      .filter((c) => c.replace(/\?$/, "").length > 0)
  );
}

interface Mention {
  token: number;
  entity?: Entity;
  focus?: Subject;
}

/** Lowercase tokens with each entity mention (and pronoun) as one ⟨n⟩ token, possessive 's split off. */
function tokenizeClause(model: MeshModel, clause: string, focus: Focus): { tokens: string[]; mentions: Map<number, Mention> } {
  // "What's", "whats", "who's": "what is" (not a possessive).
  let text = ` ${clause.replace(/[’`]/g, "'").replace(/\b(what|who|where|how|when|that|there|here)(?:'s|s)(?=\s)/gi, "$1 is")} `;
  const found: Entity[] = [];
  text = correctNames(model, text, found);
  const lower = () => text.toLowerCase();
  for (const s of model.surfaces) {
    if (s.text.length < 2) continue;
    // Single words must be capitalised in the question (a first name, "Legal"), not any "legal".
    // A possessive without its apostrophe ("Bob Okafors manager", typed on a phone) is one too.
    const re = new RegExp(`(?<=[^\\p{L}\\p{N}])${escape(s.text)}(s?)(?=[^\\p{L}\\p{N}])`, "giu");
    let m: RegExpExecArray | null;
    while ((m = re.exec(lower())) !== null) {
      const original = text.slice(m.index, m.index + s.text.length);
      if (!s.text.includes(" ") && !/^[A-Z0-9]/.test(original)) continue;
      // "…s" as a possessive only for a full name (not "Legals", not a first name that is a word).
      if (m[1] && !s.text.includes(" ")) continue;
      const n = found.length;
      found.push(s.entity);
      text = `${text.slice(0, m.index)} ⟨${n}⟩ ${m[1] ? "'s " : ""}${text.slice(m.index + m[0].length)}`;
      re.lastIndex = 0;
    }
  }
  // Ids of a kind no vocabulary lists, by the shape a tool's parameter gives ("HD-2004": a ticket).
  text = text.replace(/(?<=\s)([\p{L}\p{N}][\p{L}\p{N}_-]*\p{N}[\p{L}\p{N}_-]*)(?=[\s,;:?!.]*\s)/gu, (word: string) => {
    const e = word.includes("⟨") ? undefined : model.idEntity(word);
    if (!e) return word;
    found.push(e);
    return ` ⟨${found.length - 1}⟩ `;
  });
  if (focus.me) {
    found.push(focus.me.entity);
    const me = `⟨${found.length - 1}⟩`;
    text = text.replace(/\b(my|mine)\b/gi, ` ${me} 's `).replace(/\b(me|I)\b/g, ` ${me} `);
  }
  if (focus.personal) text = text.replace(PERSONAL_POSSESSIVE, " ⟨p⟩ 's ").replace(PERSONAL, " ⟨p⟩ ");
  if (focus.last) text = text.replace(POSSESSIVE, " ⟨f⟩ 's ").replace(PRONOUN, " ⟨f⟩ ");
  // Say the relation the way the schemas name it (on single spaces: mentions were padded).
  text = text
    .replace(/\s+/g, " ")
    // A mention with its possessive chain ("⟨0⟩ 's manager") is one object.
    .replace(/\bwho (?:does|do|did) (⟨\w+⟩(?: 's [a-z-]+)*) (?:report|answer)s? to\b/gi, "$1 's manager")
    // "who manages X" is X's manager (the relation said as its verb).
    .replace(/\bwho (?:manages|supervises|oversees) (?=the |⟨)/gi, "the manager of ")
    // "who does X manage", "the people X manages": X's reports.
    .replace(/\bwho (?:does|do|did) (⟨\w+⟩(?: 's [a-z-]+)*) (?:manage|supervise|oversee|lead)\b/gi, "$1 's reports")
    .replace(
      /\b(?:the )?(?:people|employees|staff|ones) (⟨\w+⟩(?: 's [a-z-]+)*) (?:manages|supervises|oversees|leads)\b/gi,
      "$1 's reports",
    )
    .replace(/\b(?:who )?(?:reports?|reporting|works?|working) (?:directly )?(?:to|for|under) (⟨\w+⟩(?: 's [a-z-]+)*)/gi, "$1 's reports")
    // "who sits under X", "who is under X" (not "is for X": an expense may be for someone).
    .replace(/\b(?:who )?(?:sits?|sitting|is|are) (?:directly )?under (⟨\w+⟩(?: 's [a-z-]+)*)/gi, "$1 's reports")
    .replace(/\b(⟨\w+⟩(?: 's [a-z-]+)*) (?:reports?|answers?) to\b/gi, "$1 's manager");
  const tokens = text
    .toLowerCase()
    .replace(/'s\b/g, " 's ")
    .replace(/s' /g, "s 's ")
    .split(/[^\p{L}\p{N}⟨⟩'-]+/u)
    .map((t) => t.replace(/^'(?!s$)|'$/g, ""))
    .filter(Boolean)
    .map((t) => SYNONYM[t] ?? t);
  linkByVerb(model, tokens, found);
  const mentions = new Map<number, Mention>();
  tokens.forEach((t, i) => {
    const m = /^⟨(\d+|f|p)⟩$/.exec(t);
    if (!m) return;
    const referred = m[1] === "f" ? focus.last : m[1] === "p" ? focus.personal : undefined;
    if (referred) mentions.set(i, { token: i, focus: referred });
    else mentions.set(i, { token: i, entity: found[Number(m[1])]! });
  });
  return { tokens, mentions };
}

/**
 * Names misspelt ("Wei Zang", "Ben Carterr's", "Enginering"): each one becomes a mention of the one
 * vocabulary name within a small edit distance (fastest-levenshtein: 1, or 2 for ten letters or
 * more), when exactly one thing is that close. Two words against full names first; one
 * capitalised word (not the clause's first) against one-word names of six letters or more.
 */
function correctNames(model: MeshModel, text: string, found: Entity[]): string {
  const words = text.split(" ");
  const near = (written: string, parts: number): Entity | undefined => {
    const limit = written.length >= 10 ? 2 : 1;
    const close = model.surfaces.filter(
      (x) =>
        x.text.split(" ").length === parts &&
        x.text.length >= 5 &&
        Math.abs(x.text.length - written.length) <= limit &&
        distance(x.text, written) <= limit,
    );
    if (close.some((x) => x.text === written)) return undefined;
    const entities = new Set(close.map((x) => x.entity));
    return entities.size === 1 ? close[0]!.entity : undefined;
  };
  const bare = (w: string) => w.replace(/'s$/i, "").replace(/[,;:?!.]+$/, "");
  const tail = (w: string) => (/'s[,;:?!.]*$/i.test(w) ? " 's " : "") + (/[,;:?!.]+$/.exec(w)?.[0] ?? "");
  const out: string[] = [];
  let first = true;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const next = words[i + 1];
    if (!/\p{L}/u.test(w)) {
      out.push(w);
      continue;
    }
    const pair = next && /^\p{L}/u.test(next) && !/[,;:?!.]$/.test(w) ? near(`${w} ${bare(next)}`.toLowerCase(), 2) : undefined;
    if (pair && /^\p{Lu}/u.test(w) === /^\p{Lu}/u.test(next!)) {
      found.push(pair);
      out.push(`⟨${found.length - 1}⟩${tail(next!)}`);
      i++;
    } else {
      const one = !first && /^\p{Lu}/u.test(w) && bare(w).length >= 6 ? near(bare(w).toLowerCase(), 1) : undefined;
      if (one) {
        found.push(one);
        out.push(`⟨${found.length - 1}⟩${tail(w)}`);
      } else out.push(w);
    }
    first = false;
  }
  return out.join(" ");
}

/** Words for "the person" in "the person who raised HD-2004". */
const SOMEONE = /^(person|employee|one|colleague|people|someone|somebody|guy|user|requester)$/;

/**
 * A link said as its verb: "the person who raised ⟨HD-2004⟩" and "whoever opened ⟨…⟩" are
 * "⟨…⟩ 's requester", "who raised ⟨…⟩" is "who is ⟨…⟩ 's requester", when a link from that kind
 * of thing is said with that verb (model.ts: what tools say of the parameter). Rewrites tokens.
 */
function linkByVerb(model: MeshModel, tokens: string[], found: readonly Entity[]): void {
  for (let i = 0; i < tokens.length; i++) {
    const m = /^⟨(\d+)⟩$/.exec(tokens[i]!);
    const type = m ? found[Number(m[1])]?.type : undefined;
    if (!type) continue;
    let j = i - 1;
    if (tokens[j] === type || tokens[j] === `${type}s`) j--;
    if (tokens[j] === "the" || tokens[j] === "a") j--;
    const verb = tokens[j];
    if (!verb) continue;
    const relation = model.relations.find((r) => r.from === type && r.record && r.words.includes(stem(lemmaOf(verb))));
    if (!relation) continue;
    const said = [tokens[i]!, "'s", relation.name];
    if (tokens[j - 1] === "whoever") tokens.splice(j - 1, i - j + 2, ...said);
    else if (tokens[j - 1] === "who" || tokens[j - 1] === "that") {
      let k = j - 1;
      if (SOMEONE.test(tokens[k - 1] ?? "")) {
        k--;
        if (tokens[k - 1] === "the") k--;
        tokens.splice(k, i - k + 1, ...said);
      } else if (k === 0) tokens.splice(0, i + 1, "who", "is", ...said);
    }
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Capitalised names and employee-like ids in the question that no vocabulary knows. */
function unknownNames(clause: string, mentions: Map<number, Mention>, model: MeshModel): string[] {
  const out: string[] = [];
  const known = new Set(model.entities.flatMap((e) => e.name.toLowerCase().split(/\s+/)));
  for (const m of clause.replace(/^\s*\S+/, "").matchAll(/\b([A-Z][a-z'’-]+(?: [A-Z][a-z'’-]+)+)\b/g)) {
    const name = m[1]!.replace(/['’]s$/, "");
    if (
      !name
        .toLowerCase()
        .split(" ")
        .some((w) => known.has(w))
    )
      out.push(name);
  }
  for (const m of clause.matchAll(/\b[A-Z]\d{3,}\b/g)) if (!model.entities.some((e) => e.id === m[0])) out.push(m[0]);
  return mentions.size === 0 || out.length > 0 ? out : [];
}

interface Chain {
  subject: Subject;
  /** Relations in the order they apply, each with the selector on it. */
  relations: { relation: Relation; pick?: "max" | "min" }[];
  type: string;
  tokens: number[];
}

/** Reads "X's manager's manager", "the newest direct report of X", "the manager of X's …". */
function findChains(model: MeshModel, tokens: string[], mentions: Map<number, Mention>): Chain[] {
  const chains: Chain[] = [];
  for (const [i, m] of mentions) {
    const subject: Subject | undefined = m.entity ? { type: m.entity.type, label: m.entity.name, entity: m.entity } : m.focus;
    if (!subject) continue;
    const chain: Chain = { subject, relations: [], type: subject.type, tokens: [i] };
    let type = subject.type;
    // Right: ⟨X⟩ 's [selector] relation ('s …)*
    let k = i + 1;
    while (tokens[k] === "'s") {
      const r = relationAt(model, tokens, k + 1, type);
      if (!r) break;
      chain.relations.push(r.found);
      chain.tokens.push(k, ...r.tokens);
      type = r.found.relation.to;
      k = r.next;
    }
    // Left: "the newest member of ⟨X⟩'s team", "the longest-serving person ⟨X⟩'s reports":
    // a selector on one element of the list the chain ends in.
    const last = chain.relations.at(-1);
    if (last && last.relation.list && !last.pick) {
      let e = i - 1;
      if (tokens[e] === "of" || tokens[e] === "in" || tokens[e] === "on") e--;
      if (ELEMENT_WORDS.has(tokens[e] ?? "")) {
        for (const back of [3, 2, 1]) {
          const sel = selectorAt(tokens, e - back);
          if (sel && sel.next === e) {
            last.pick = sel.order;
            chain.tokens.push(...sel.tokens, ...range(e, i - e));
            break;
          }
        }
      }
    }
    // Left: [the] [selector] relation of [the] ⟨X⟩ …, nearest first.
    let j = i - 1;
    while (j >= 1) {
      if (tokens[j] === "the") j--;
      if (tokens[j] !== "of") break;
      const r = relationBefore(model, tokens, j - 1, type);
      if (!r) break;
      chain.relations.push(r.found);
      chain.tokens.push(j, ...r.tokens);
      type = r.found.relation.to;
      j = Math.min(...r.tokens) - 1;
      if (tokens[j] === "the") {
        chain.tokens.push(j);
        j--;
      }
    }
    chain.type = type;
    chains.push(chain);
  }
  return chains;
}

type Found = { found: { relation: Relation; pick?: "max" | "min" }; tokens: number[]; next: number };

function relationAt(model: MeshModel, tokens: string[], p: number, from: string): Found | undefined {
  let pick: "max" | "min" | undefined;
  const used: number[] = [];
  const sel = selectorAt(tokens, p);
  if (sel) {
    pick = sel.order;
    used.push(...sel.tokens);
    p = sel.next;
  }
  for (const len of [2, 1]) {
    const phrase = tokens.slice(p, p + len);
    if (phrase.length < len) continue;
    const relation = matchRelation(model, phrase, from);
    if (relation) return { found: { relation, ...(pick ? { pick } : {}) }, tokens: [...used, ...range(p, len)], next: p + len };
  }
  return undefined;
}

function relationBefore(model: MeshModel, tokens: string[], end: number, from: string): Found | undefined {
  for (const len of [2, 1]) {
    const start = end - len + 1;
    if (start < 0) continue;
    const relation = matchRelation(model, tokens.slice(start, end + 1), from);
    if (!relation) continue;
    const used = range(start, len);
    let pick: "max" | "min" | undefined;
    for (const back of [2, 1]) {
      const sel = selectorAt(tokens, start - back);
      if (sel && sel.next === start) {
        pick = sel.order;
        used.push(...sel.tokens);
        break;
      }
    }
    return { found: { relation, ...(pick ? { pick } : {}) }, tokens: used, next: end + 1 };
  }
  return undefined;
}

function selectorAt(tokens: string[], p: number): { order: "max" | "min"; tokens: number[]; next: number } | undefined {
  if (p < 0) return undefined;
  for (const len of [3, 2, 1]) {
    const phrase = tokens.slice(p, p + len).join(" ");
    const s = SELECTORS.find((x) => x.re.test(phrase));
    if (s) return { order: s.order, tokens: range(p, len), next: p + len };
  }
  return undefined;
}

function matchRelation(model: MeshModel, phrase: string[], from: string): Relation | undefined {
  const stems = phrase.map(stem);
  if (stems.some((s) => s.startsWith("⟨") || s === "'s")) return undefined;
  return model.relations.find((r) => r.from === from && stems.every((s) => r.words.includes(s)) && stems.includes(r.words[0]!));
}

function range(start: number, len: number): number[] {
  return Array.from({ length: len }, (_, i) => start + i);
}

/** Builds steps, sharing one call between parts that need the same thing. */
class Builder {
  private readonly steps: Step[];
  /** "Today", for relative dates. */
  readonly now: Date;
  /** Statements of the message beside its request ("I need a new charger"): what a free-text field says. */
  readonly context: string[] = [];
  constructor(steps: Step[], now: Date) {
    this.steps = steps;
    this.now = now;
  }

  call(agent: string, tool: string, args: Record<string, Arg>, why: string, sideEffect = false): string {
    const key = JSON.stringify([agent, tool, args]);
    // The same call twice in one plan is one call; for a change too (one message books once).
    const same = this.steps.find((s) => JSON.stringify([s.agent, s.tool, s.args]) === key);
    if (same) return same.id;
    const id = `s${this.steps.length + 1}`;
    const after = [...new Set(Object.values(args).flatMap((a) => (typeof a === "object" ? [a.$ref.step] : [])))];
    this.steps.push({ id, agent, tool, args, after, why, sideEffect });
    return id;
  }

  arg(subject: Subject): Arg {
    if ("entity" in subject) return subject.entity.id;
    return { $ref: subject.ref };
  }

  /** Adds the steps that follow a chain's relations; returns the hops and where it ends. */
  follow(chain: Chain): { hops: Hop[]; subject: Subject } {
    let subject = chain.subject;
    const hops: Hop[] = [];
    for (const { relation, pick } of chain.relations) {
      const step = this.call(
        relation.agent,
        relation.tool,
        { [relation.param]: this.arg(subject) },
        `find ${subject.label}'s ${relation.name}`,
      );
      const field = relation.dateFields[0];
      let ref: Ref = { step, path: relation.path, ...(pick && field ? { pick: { field, order: pick } } : {}) };
      // A link that ends in an id: read that thing's record, to name it and go on from it.
      if (relation.record) {
        const r = relation.record;
        const read = this.call(r.agent, r.tool, { [r.param]: { $ref: ref } }, `read the ${r.type} ${subject.label}'s ${relation.name} is`);
        ref = { step: read, path: [r.path[0]!] };
      }
      const label = `${subject.label}'s ${pick ? `${pick === "max" ? "newest" : "longest-serving"} ${words(relation.label).replace(/s$/, "")}` : words(relation.label)}`;
      subject = { type: relation.to, label, ref, list: relation.list && !pick };
      hops.push({ label, subject });
    }
    return { hops, subject };
  }
}

/** Fills a tool's arguments from the question; says which required ones it cannot find. */
function fill(
  target: Target,
  clause: string,
  /** Who the call is about (none: a tool that needs no one in particular). */
  subject: Subject | undefined,
  others: Subject[],
  b: Builder,
): { args: Record<string, Arg> } | { missing: { name: string; description?: string }[] } {
  const args: Record<string, Arg> = {};
  const expanded = expand(clause).toLowerCase().replace(/_/g, " ");
  // Dates by chrono-node ("2026-12-21", "next Monday", "December 21 to 24"); amounts by
  // wink-nlp ("1,500 USD", "$2k"), once dates, durations and ids are set aside.
  const spans = dates(clause, b.now);
  const days = (() => {
    const d = DURATION.exec(clause);
    return d ? (WORD_NUMBERS[d[1]!.toLowerCase()] ?? Number(d[1])) : undefined;
  })();
  let plain = clause.replace(DURATION, " ").replace(/\b[A-Z]+-?\d{3,}\b/g, " ");
  for (const s of spans) plain = plain.replace(s.text, " ");
  const numbers = amounts(plain).map((a) => a.value);
  const start = spans[0]?.start;
  const end = spans[0]?.end ?? spans[1]?.start;
  let subjectUsed = false;
  const free: string[] = [];
  for (const [name, s] of Object.entries(target.properties)) {
    const ep = target.entityParams.find((p) => p.param === name);
    if (ep) {
      if (subject && !subjectUsed && ep.type === subject.type) {
        args[name] = b.arg(subject);
        subjectUsed = true;
        continue;
      }
      const other = others.find((o) => o.type === ep.type);
      if (other) args[name] = b.arg(other);
      continue;
    }
    if (s.enum) {
      // Enum values as words ("in_progress" is "in progress"), whether the parameter is required or a filter.
      const hit = s.enum.find(
        (v) => typeof v === "string" && new RegExp(`\\b${escape(v.toLowerCase().replace(/_/g, " "))}`).test(expanded),
      );
      if (hit !== undefined) args[name] = hit as string;
      continue;
    }
    if (/date/i.test(name) && (s.type === "string" || s.pattern)) {
      if (/^(start|from|first)/i.test(name) && start) args[name] = start;
      else if (/^(end|to|until|last)/i.test(name)) {
        if (end) args[name] = end;
        else if (start) args[name] = addWorkingDays(start, (days ?? 1) - 1);
      } else if (start) args[name] = start;
      continue;
    }
    if ((s.type === "number" || s.type === "integer") && target.required.includes(name) && numbers.length > 0) {
      args[name] = numbers.shift()!;
      continue;
    }
    if (s.type === "string" && s.pattern) {
      // A value whose shape the schema gives (a month "2026-12", a ticket "HD-2001"): the question's word of that shape.
      let re: RegExp | undefined;
      try {
        re = new RegExp(s.pattern);
      } catch {
        re = undefined;
      }
      const hit = re ? clause.split(/[\s,;?!]+/).find((w) => re.test(w)) : undefined;
      if (hit) {
        args[name] = hit;
        continue;
      }
    }
    if (s.type === "string" && target.required.includes(name)) {
      if (name === target.search)
        args[name] = subject ? ("entity" in subject ? subject.entity.name : b.arg(subject)) : clause.replace(/[?!.]+$/, "");
      else if (!s.pattern && !("format" in s)) free.push(name);
    }
  }
  // A required free-text parameter, whatever its name (description, summary, reason, note…): the
  // question's own words for it ("…: the screen flickers", "…because the VPN drops").
  if (free.length === 1) args[free[0]!] = freeText(clause, b.context);
  const missing = target.required
    .filter((r) => args[r] === undefined)
    .map((r) => ({ name: r, description: target.properties[r]?.description }));
  return missing.length
    ? { missing: missing.map((m) => (m.description ? { name: m.name, description: m.description } : { name: m.name })) }
    : { args };
}

/** What a free-text field says: the words after a colon or a "because", else the whole clause. */
function freeText(clause: string, context: readonly string[] = []): string {
  const text = clause.trim().replace(/[?!.]+$/, "");
  const said = /:\s*(.{3,})$/.exec(text)?.[1] ?? /\b(?:because|since|saying|as)\s+(.{3,})$/i.exec(text)?.[1];
  return (said ?? (context.length ? context.join(". ") : text)).trim().slice(0, 300);
}

/** The date `n` working days (Monday-Friday) after `iso`. */
export function addWorkingDays(iso: string, n: number): string {
  const d = new Date(`${iso}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return iso;
  let left = Math.max(0, n);
  while (left > 0) {
    d.setUTCDate(d.getUTCDate() + 1);
    if (d.getUTCDay() !== 0 && d.getUTCDay() !== 6) left--;
  }
  return d.toISOString().slice(0, 10);
}
