import { stem } from "../../../src/text/tokenize.ts";
import type { MeshModel } from "./model.ts";
import { expand } from "./thesaurus.ts";
import { fieldWords, tokens as wordsOf } from "./language.ts";
import type { Builder } from "./builder.ts";
import type { Chain } from "./chains.ts";
import { askAgent, focusAfter, readAttribute } from "./parts.ts";
import type { ClauseReading } from "./reading.ts";
import type { ClauseOutcome } from "./planTypes.ts";

// Clauses about the things they name that no one tool answers: a name no agent knows, a
// thing and a field of someone's record, the bare name of a thing, data no agent holds.

/** Names the clause says that no agent knows, and nothing else it names: said, not guessed. */
export function unknownNamesProblem(model: MeshModel, r: ClauseReading): ClauseOutcome {
  const names = r.unknown.map((u) => `"${u}"`).join(" or ");
  return problem(r.clause, `I could not find ${names} in the mesh (no agent knows that name or id).`, owners(model, "employee")[0]);
}

/**
 * "Is Olga Ivanova in Engineering?": a person and a thing their record names (a department):
 * the answer is that field of their record.
 */
export function askedOfRecord(model: MeshModel, b: Builder, r: ClauseReading): ClauseOutcome | undefined {
  const { chains } = r;
  if (r.content.length !== 0 || chains.length !== 2 || !chains.every((c) => c.relations.length === 0)) return undefined;
  const person = model.personType;
  const who = chains.find((c) => c.type === person);
  const what = chains.find((c) => c !== who);
  const field = who && what ? model.attributes.find((a) => a.type === person && a.field === what.type) : undefined;
  return who && field ? readAttribute(model, b, r.clause, who, field) : undefined;
}

/**
 * A clause that says nothing but what it names and the relations it follows ("Who is Rosa
 * Moreno's manager?", "How many people are in X's team?", "Which public holidays do we get?").
 */
export function aboutNamed(model: MeshModel, b: Builder, r: ClauseReading): ClauseOutcome | undefined {
  const { chains, content, clause } = r;
  // "How many people are in X's team?": the list is the answer (its count is said with it).
  const last = chains.length === 1 ? chains[0]!.relations.at(-1) : undefined;
  const countOfList =
    /\bhow many\b/i.test(clause) &&
    last?.relation.list === true &&
    !last.pick &&
    content.every((w) => /^(many|number|count|total|in|on)$/.test(w));
  if (!(chains.length > 0 && (content.length === 0 || countOfList) && !r.asksWho)) return undefined;
  const chain = chains[0]!;
  if (chain.relations.length > 0 || chains.length > 1) {
    // "Who is Rosa Moreno's manager?": the answer is who the relations lead to.
    const { hops } = b.follow(chain);
    return { decision: "plan", part: { kind: "identity", clause, hops }, focus: focusAfter(chain, hops), candidates: [] };
  }
  return aboutOne(model, b, clause, chain);
}

/**
 * A bare name known to one agent that answers in words ("Which public holidays do we get?"):
 * that agent tells about it. Known to several: ask which side is meant. (Tools of several
 * agents acting on it, as on a person hr, finance and a helpdesk all take: ask too.)
 */
function aboutOne(model: MeshModel, b: Builder, clause: string, chain: Chain): ClauseOutcome {
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

/**
 * About someone or something that several tools act on (an employee, a department), in
 * words no tool or field knows ("check the numbers for Bob"): a person would ask what is
 * wanted. (A document is read by one tool: a free question about it goes to its agent.)
 */
export function notOffered(model: MeshModel, r: ClauseReading): ClauseOutcome | undefined {
  const { chains, content } = r;
  const manyWays = (type: string) => model.targets.filter((t) => t.entityParams.some((p) => p.type === type)).length >= 2;
  if (!(
    chains.length > 0 &&
    chains.every((c) => c.relations.length === 0 && manyWays(c.type)) &&
    model.rank(r.query, undefined).length === 0
  ))
    return undefined;
  const about = chains.map((c) => c.subject.label).join(" and ");
  // A question about data no agent holds ("What is Bob Okafor's shoe size?") is answered as
  // such, with what the agents do hold; a loose fragment ("numbers for Bob") is asked back.
  const wanted = content.filter((w) => w !== "'s").join(" ");
  const relationWord = content.some((w) => model.relations.some((x) => x.words.includes(stem(w))));
  // Only for a wh-question asking for a thing by its name (nouns: "shoe size", "phone
  // number"); a verb no tool knows ("spend", "drive") or a yes/no question is asked back.
  const nouns = wordsOf(wanted).every((t) => t.pos === "NOUN" || t.pos === "PROPN" || t.pos === "ADJ");
  if (wanted && !relationWord && nouns && /^\s*(what|which|when|where|whose)\b/i.test(r.clause)) return notHeld(model, r, wanted, about);
  return {
    decision: "ambiguous",
    message: `What would you like to know or do about ${about}? Nothing the agents offer matches "${content.join(" ")}".`,
    candidates: [],
  };
}

/** Data no agent holds about the things named, said with what the agents do hold about them. */
function notHeld(model: MeshModel, r: ClauseReading, wanted: string, about: string): ClauseOutcome {
  const { chains } = r;
  const kind = chains.length > 1 ? "them" : `${/^[aeiou]/i.test(chains[0]!.type) ? "an" : "a"} ${chains[0]!.type}`;
  const agent = chains[0] && "entity" in chains[0].subject ? chains[0].subject.entity.agents[0] : undefined;
  return problem(
    r.clause,
    `No agent in the mesh holds "${wanted}" for ${about}. What they hold about ${kind}: ${heldAbout(model, chains[0]!.type)}.`,
    agent,
  );
}

/** A part that says why the clause is not answered, and the agent it is about (if any). */
function problem(clause: string, message: string, agent: string | undefined): ClauseOutcome {
  return { decision: "plan", part: { kind: "problem", clause, hops: [], message, ...(agent ? { agent } : {}) }, candidates: [] };
}

/** What the mesh holds about things of a type, by agent: its record's fields and the tools that read it. */
function heldAbout(model: MeshModel, type: string): string {
  const byAgent = new Map<string, Set<string>>();
  const add = (agent: string, what: string) => (byAgent.get(agent) ?? byAgent.set(agent, new Set()).get(agent)!).add(what);
  for (const a of model.attributes) if (a.type === type) add(a.agent, fieldWords(a.field));
  for (const t of model.targets)
    if (
      !t.sideEffect &&
      t.entityParams.some((p) => p.type === type) &&
      !model.attributes.some((a) => a.tool === t.tool.name && a.agent === t.agent)
    )
      add(t.agent, (t.tool.title ?? t.tool.name.replace(/_/g, " ")).toLowerCase());
  return [...byAgent].map(([agent, what]) => `${agent}: ${[...what].slice(0, 10).join(", ")}`).join("; ");
}

/** The agents whose vocabularies list things of a type. */
function owners(model: MeshModel, type: string): string[] {
  return [...new Set(model.entities.filter((e) => e.type === type).flatMap((e) => e.agents))];
}
