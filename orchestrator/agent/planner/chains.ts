import { stem } from "../../../src/text/tokenize.ts";
import type { MeshModel } from "./model.ts";
import type { Relation } from "./records.ts";
import type { Subject } from "./planTypes.ts";
import { SELECTORS } from "./thesaurus.ts";
import type { Mention } from "./mentions.ts";

// The reading of a clause's relations: from each thing it names, the relations it asks to
// follow ("X's manager's manager", "the newest direct report of X"), each with its selector.

/** Words for one member of a list ("the newest member of the team", "the longest-serving person"). */
const ELEMENT_WORDS = new Set(["member", "members", "person", "one", "employee", "people", "report"]);

/** A named thing (or the focus) and the relations the clause follows from it, in order. */
export interface Chain {
  subject: Subject;
  /** Relations in the order they apply, each with the selector on it. */
  relations: { relation: Relation; pick?: "max" | "min" }[];
  type: string;
  tokens: number[];
}

/** Reads "X's manager's manager", "the newest direct report of X", "the manager of X's …". */
export function findChains(model: MeshModel, tokens: string[], mentions: Map<number, Mention>): Chain[] {
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
