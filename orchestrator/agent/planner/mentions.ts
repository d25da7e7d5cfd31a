import { distance } from "fastest-levenshtein";
import { stem } from "../../../src/text/tokenize.ts";
import type { Entity, MeshModel } from "./model.ts";
import type { Focus, Subject } from "./planTypes.ts";
import { escapeRegExp, lemmaOf } from "./language.ts";

// The reading of a clause's names: which words name a thing the mesh knows (by its vocabulary,
// by an id's shape, misspelt or not), which pronouns point back to the conversation's focus,
// and the relations said as verbs ("who does ⟨X⟩ report to") said the way the schemas name them.

/** One word of the clause that names a thing: an entity, or what a pronoun refers to. */
export interface Mention {
  token: number;
  entity?: Entity;
  focus?: Subject;
}

const PERSONAL_POSSESSIVE = /\b(his|her|their)\b/gi;
const PERSONAL = /\b(he|she|they|them|him)\b/gi;
const POSSESSIVE = /\bits\b/gi;
const PRONOUN = /\bit\b/gi;
const SYNONYM: Record<string, string> = { boss: "manager", supervisor: "manager", team: "reports", reportees: "reports" };

/** Lowercase tokens with each entity mention (and pronoun) as one ⟨n⟩ token, possessive 's split off. */
export function tokenizeClause(model: MeshModel, clause: string, focus: Focus): { tokens: string[]; mentions: Map<number, Mention> } {
  // "What's", "whats", "who's": "what is" (not a possessive).
  let text = ` ${clause.replace(/[’`]/g, "'").replace(/\b(what|who|where|how|when|that|there|here)(?:'s|s)(?=\s)/gi, "$1 is")} `;
  const found: Entity[] = [];
  text = correctNames(model, text, found);
  text = markSurfaces(model, text, found);
  text = markIds(model, text, found);
  text = markPronouns(text, focus, found);
  const tokens = splitTokens(sayRelations(text));
  linkByVerb(model, tokens, found);
  return { tokens, mentions: mentionsOf(tokens, found, focus) };
}

/** Each vocabulary name (longest first) the text says, as a ⟨n⟩ mention of its entity. */
function markSurfaces(model: MeshModel, text: string, found: Entity[]): string {
  const lower = () => text.toLowerCase();
  for (const s of model.surfaces) {
    if (s.text.length < 2) continue;
    // Single words must be capitalised in the question (a first name, "Legal"), not any "legal".
    // A possessive without its apostrophe ("Bob Okafors manager", typed on a phone) is one too.
    const re = new RegExp(`(?<=[^\\p{L}\\p{N}])${escapeRegExp(s.text)}(s?)(?=[^\\p{L}\\p{N}])`, "giu");
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
  return text;
}

/** Ids of a kind no vocabulary lists, by the shape a tool's parameter gives ("HD-2004": a ticket). */
function markIds(model: MeshModel, text: string, found: Entity[]): string {
  return text.replace(/(?<=\s)([\p{L}\p{N}][\p{L}\p{N}_-]*\p{N}[\p{L}\p{N}_-]*)(?=[\s,;:?!.]*\s)/gu, (word: string) => {
    const e = word.includes("⟨") ? undefined : model.idEntity(word);
    if (!e) return word;
    found.push(e);
    return ` ⟨${found.length - 1}⟩ `;
  });
}

/** "I", "me", "my" as who the message said it is; "he", "her", "its" as the conversation's focus (⟨p⟩, ⟨f⟩). */
function markPronouns(text: string, focus: Focus, found: Entity[]): string {
  if (focus.me) {
    found.push(focus.me.entity);
    const me = `⟨${found.length - 1}⟩`;
    text = text.replace(/\b(my|mine)\b/gi, ` ${me} 's `).replace(/\b(me|I)\b/g, ` ${me} `);
  }
  if (focus.personal) text = text.replace(PERSONAL_POSSESSIVE, " ⟨p⟩ 's ").replace(PERSONAL, " ⟨p⟩ ");
  if (focus.last) text = text.replace(POSSESSIVE, " ⟨f⟩ 's ").replace(PRONOUN, " ⟨f⟩ ");
  return text;
}

/** Says the relation the way the schemas name it (on single spaces: mentions were padded). */
function sayRelations(text: string): string {
  return (
    text
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
      .replace(/\b(⟨\w+⟩(?: 's [a-z-]+)*) (?:reports?|answers?) to\b/gi, "$1 's manager")
  );
}

/** Lowercase word tokens, the possessive 's its own token, everyday words for relations as the schemas' ("boss": manager). */
function splitTokens(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/'s\b/g, " 's ")
    .replace(/s' /g, "s 's ")
    .split(/[^\p{L}\p{N}⟨⟩'-]+/u)
    .map((t) => t.replace(/^'(?!s$)|'$/g, ""))
    .filter(Boolean)
    .map((t) => SYNONYM[t] ?? t);
}

/** The mentions by token position: ⟨n⟩ the n-th entity found, ⟨f⟩ and ⟨p⟩ what the focus says. */
function mentionsOf(tokens: readonly string[], found: readonly Entity[], focus: Focus): Map<number, Mention> {
  const mentions = new Map<number, Mention>();
  tokens.forEach((t, i) => {
    const m = /^⟨(\d+|f|p)⟩$/.exec(t);
    if (!m) return;
    const referred = m[1] === "f" ? focus.last : m[1] === "p" ? focus.personal : undefined;
    if (referred) mentions.set(i, { token: i, focus: referred });
    else mentions.set(i, { token: i, entity: found[Number(m[1])]! });
  });
  return mentions;
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

/** Capitalised names and employee-like ids in the question that no vocabulary knows. */
export function unknownNames(clause: string, mentions: Map<number, Mention>, model: MeshModel): string[] {
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
