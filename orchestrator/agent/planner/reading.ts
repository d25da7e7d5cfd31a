import { STOPWORDS } from "../../../src/text/tokenize.ts";
import type { MeshModel } from "./model.ts";
import type { Target } from "./targets.ts";
import { expand, IDENTITY_WORDS } from "./thesaurus.ts";
import { asksFor, speechAct, type SpeechAct } from "./speechAct.ts";
import { findChains, type Chain } from "./chains.ts";
import { tokenizeClause, unknownNames } from "./mentions.ts";
import type { Focus } from "./planTypes.ts";

// The planner's reading of a question: its clauses, and of each clause what it names, the
// relations it follows from them, what kind of speech act it is and the words left that say
// what is asked. Planning (plan.ts) decides from this reading alone.

/** One clause as the planner reads it. */
export interface ClauseReading {
  clause: string;
  /** Lowercase tokens, each mention one ⟨n⟩ token (mentions.ts). */
  tokens: string[];
  act: SpeechAct;
  /** The state-changing tools the clause may lead to: for a request, those whose own verb is of the kind asked. */
  mayChange: (t: Target) => boolean;
  /** Capitalised names and employee-like ids that no vocabulary knows. */
  unknown: string[];
  chains: Chain[];
  /** The tokens no chain took, mentions aside. */
  rest: string[];
  /** Of those, the words that say what is asked (no identity words, no stopwords). */
  content: string[];
  /** "Who …" with no person named: the people the mesh knows are the answer's kind. */
  asksWho: boolean;
  /** What tools and fields are ranked by: the rest, with the thesaurus's words. */
  query: string;
}

/** Reads one clause (in question order) against the mesh, with the conversation's focus for its pronouns. */
export function readClause(model: MeshModel, clause: string, focus: Focus): ClauseReading {
  const { tokens, mentions } = tokenizeClause(model, clause, focus);
  // Only a request to act may lead to a tool that changes state, and only to one whose own
  // verb is of the kind asked for; a clause that starts with a name is about it.
  const lead = tokens.find((t) => !/^(please|pls|kindly|hey|hi|ok|okay|so|now|also|then|just)$/.test(t));
  const act: SpeechAct = lead?.startsWith("⟨") ? { kind: "question" } : speechAct(clause);
  const mayChange = (t: Target) => asksFor(act, t.tool, t.actions);
  const unknown = unknownNames(clause, mentions, model);
  const chains = findChains(model, tokens, mentions);
  const used = new Set(chains.flatMap((c) => c.tokens));
  const rest = tokens.filter((t, i) => !used.has(i) && !t.startsWith("⟨"));
  const content = rest.filter((t) => !IDENTITY_WORDS.test(t) && !STOPWORDS.has(t));
  const person = model.personType;
  const asksWho =
    (/^\s*(who|whom|whose)\b/i.test(clause) || rest.some((t) => /^(people|persons|everyone|staff|employees|members)$/.test(t))) &&
    person !== undefined &&
    !chains.some((c) => c.type === person);
  const query = expand([...rest, ...(asksWho ? [person!] : [])].join(" "));
  return { clause, tokens, act, mayChange, unknown, chains, rest, content, asksWho, query };
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
