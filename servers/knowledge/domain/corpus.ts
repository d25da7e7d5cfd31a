import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import MiniSearch from "minisearch";
import SearchableMap from "minisearch/SearchableMap";
import { BusinessError } from "../../../src/protocol/results.ts";
import { ALIASES } from "./aliases.ts";
import { compoundOf, isUnknownEnglish, lemmas, stopWordsNear, topicTerms, valueWords } from "./language.ts";

export interface Document {
  id: string;
  title: string;
  category: string;
  /** Path inside the shipped corpus, e.g. docs/expense-policy.md */
  source: string;
  text: string;
}

export interface Passage {
  docId: string;
  title: string;
  source: string;
  index: number;
  text: string;
}

export interface SearchHit extends Passage {
  score: number;
  /** The query's index terms this passage contains. */
  matched: string[];
}

/**
 * One word (or phrase) of a query as the index sees it: its own term, plus the terms of what
 * employees also call it (ALIASES). It is matched when a passage contains any of them.
 */
export interface QueryWord {
  word: string;
  pos: string;
  terms: string[];
  /** How many of `terms`, from the first, are the word's own (the rest come from ALIASES). */
  own: number;
  /**
   * Not the topic but the asker's case or the asking: part of a value the question states ("a 20
   * dollar taxi", "since Monday", "10 days off") or a word about the documents ("the handbook",
   * "which rules apply", see answer.ts). It weighs less and is never a missing topic.
   */
  minor: boolean;
}

/** A term a query word brings as an alias (ALIASES) counts this much as the word's own. @default 0.5 */
export const ALIAS_BOOST = 0.5;

/** A minor word of the query (QueryWord.minor) counts this much as a topic word. @default 0.25 */
export const MINOR_BOOST = 0.25;

/** Where the shipped company documents live. */
export const DEFAULT_DOCS_DIR = fileURLToPath(new URL("../data/docs/", import.meta.url));

/**
 * How far (in edits) a word the English model does not know may be from the documents' word it
 * is read as: 1, and 2 from this length on ("referall" → "referral"). @default 8
 */
export const TWO_TYPOS_FROM_LENGTH = 8;

/** Words shorter than this are never respelt ("gp", "2fa", "hr"). @default 4 */
export const MIN_RESPELL_LENGTH = 4;

/** A match in a document's title counts this many times one in the passage. @default 2 */
export const TITLE_BOOST = 2;

/**
 * Company documents, split into paragraph passages, each indexed with its document's title
 * (boosted) and ranked with MiniSearch's BM25+. Terms come from wink-nlp (language.ts).
 */
export class Corpus {
  private readonly docs: Map<string, Document>;
  private readonly passages = new Map<string, Passage>();
  /** How many passages (title included) contain each term. */
  private readonly df = new Map<string, number>();
  private readonly index: MiniSearch<Passage & { id: string }>;
  /** The documents' words as written (lower case), with how often each occurs. */
  private readonly vocabulary = new SearchableMap<number>();

  constructor(documents: readonly Document[]) {
    this.docs = new Map(documents.map((d) => [d.id, d]));
    const analysed = new Map<string, string[]>();
    const termsOf = (text: string): string[] => {
      let terms = analysed.get(text);
      if (!terms) {
        terms = topicTerms(text).flatMap((t) => t.terms);
        analysed.set(text, terms);
      }
      return terms;
    };
    this.index = new MiniSearch<Passage & { id: string }>({
      fields: ["title", "text"],
      tokenize: termsOf,
      processTerm: (t) => t,
      searchOptions: { boost: { title: TITLE_BOOST }, tokenize: (q) => q.split(" ").filter(Boolean), processTerm: (t) => t },
    });
    for (const d of documents) {
      d.text
        .split(/\n\s*\n/)
        .map((p) => p.trim())
        .filter(Boolean)
        .forEach((text, index) => {
          const passage: Passage = { docId: d.id, title: d.title, source: d.source, index, text };
          const id = `${d.id}#${index}`;
          this.passages.set(id, passage);
          this.index.add({ id, ...passage });
          for (const t of new Set([...termsOf(d.title), ...termsOf(text)])) this.df.set(t, (this.df.get(t) ?? 0) + 1);
          for (const w of wordsOf(`${d.title} ${text}`)) this.vocabulary.update(w, (n = 0) => n + 1);
        });
    }
    // What employees call a topic is spelt wrong as often as the documents' words ("paternty").
    for (const [key] of ALIASES) for (const w of wordsOf(key)) this.vocabulary.update(w, (n = 0) => n + 1);
  }

  static load(dir: string = DEFAULT_DOCS_DIR): Corpus {
    const docs = readdirSync(dir)
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((file) => parseDocument(file.slice(0, -3), `docs/${file}`, readFileSync(join(dir, file), "utf8")));
    return new Corpus(docs);
  }

  get size(): number {
    return this.docs.size;
  }

  list(category?: string): Document[] {
    return [...this.docs.values()].filter((d) => !category || d.category === category);
  }

  categories(): string[] {
    return [...new Set([...this.docs.values()].map((d) => d.category))].sort();
  }

  get(id: string): Document {
    const d = this.docs.get(id);
    if (!d)
      throw new BusinessError(`Unknown document id "${id}". Use list_documents or search_documents to find ids, e.g. "expense-policy".`);
    return d;
  }

  /**
   * The query with each word that neither the documents nor the English model know read as the
   * nearest word the documents use ("retirment" → "retirement"), or as the stop word one typo
   * away ("meny" → "many"). Words the model knows are never changed: "dog" stays "dog".
   */
  respell(query: string): string {
    return query.replace(/[\p{L}]+/gu, (word) => {
      const w = word.toLowerCase();
      if (w.length < MIN_RESPELL_LENGTH || this.vocabulary.has(w) || !isUnknownEnglish(w)) return word;
      const near = [...this.vocabulary.fuzzyGet(w, w.length >= TWO_TYPOS_FROM_LENGTH ? 2 : 1)].sort(
        ([a, [na, da]], [b, [nb, db]]) => da - db || nb - na || a.localeCompare(b),
      );
      return near[0]?.[0] ?? stopWordsNear(w)[0] ?? word;
    });
  }

  /**
   * The query's topic words: stop words and function words left out ("how many", "can I"),
   * compounds written apart found ("on call" → on-call), and what employees also call a topic.
   */
  queryWords(asked: string): QueryWord[] {
    const query = this.respell(asked);
    const values = valueWords(query);
    const out: QueryWord[] = topicTerms(query).map((t) => ({
      word: t.word,
      pos: t.pos,
      terms: t.terms,
      own: t.terms.length,
      // "10-hour" is a value when its parts are.
      minor: t.pos === "NUM" || t.word.split("-").every((part) => values.has(part)),
    }));
    const lem = lemmas(query);
    for (let i = 0; i + 1 < lem.length; i++) {
      const compound = compoundOf([lem[i]!, lem[i + 1]!]);
      if (this.df.has(compound) && !out.some((w) => w.terms.includes(compound)))
        out.push({ word: `${lem[i]} ${lem[i + 1]}`, pos: "NOUN", terms: [compound], own: 1, minor: false });
    }
    const phrase = ` ${lem.join(" ")} `;
    for (const [key, also] of ALIASES) {
      const keyLemmas = lemmas(key);
      if (!phrase.includes(` ${keyLemmas.join(" ")} `)) continue;
      const extra = topicTerms(also).flatMap((t) => t.terms);
      const own = out.find((w) => lemmas(w.word).join(" ") === keyLemmas.join(" "));
      if (own) {
        own.terms = [...new Set([...own.terms, ...extra])];
        continue;
      }
      // A phrase's words no document uses are the phrase's ("coffee shop", "trial period", "in a row").
      const unused = out.filter((w) => lemmas(w.word).every((l) => keyLemmas.includes(l)) && w.terms.every((t) => !this.df.has(t)));
      out.splice(0, out.length, ...out.filter((w) => !unused.includes(w)));
      out.push({ word: key, pos: "NOUN", terms: extra, own: 0, minor: false });
    }
    return out;
  }

  get passageCount(): number {
    return this.passages.size;
  }

  /** Passages containing `term` (title included); 0 for a word no document uses. */
  passagesWith(term: string): number {
    return this.df.get(term) ?? 0;
  }

  /** How telling a term is: BM25's inverse document frequency over passages (rare terms weigh more). */
  weight(term: string): number {
    const n = this.passages.size;
    const df = this.passagesWith(term);
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  }

  /** Best passages for a query, best first; `words` skips analysing the query again. */
  search(query: string, limit = 5, words: readonly QueryWord[] = this.queryWords(query)): SearchHit[] {
    const boosts = new Map<string, number>();
    for (const w of words)
      w.terms.forEach((t, i) => boosts.set(t, Math.max(boosts.get(t) ?? 0, (i < w.own ? 1 : ALIAS_BOOST) * (w.minor ? MINOR_BOOST : 1))));
    if (boosts.size === 0) return [];
    return this.index
      .search([...boosts.keys()].join(" "), { boostTerm: (t) => boosts.get(t) ?? 1 })
      .slice(0, limit)
      .map((r) => ({ ...this.passages.get(String(r.id))!, score: Math.round(r.score * 1000) / 1000, matched: r.queryTerms }));
  }
}

/** The words of a text as written, lower case. */
const wordsOf = (text: string) => text.toLowerCase().match(/[\p{L}]+/gu) ?? [];

/** Parses a document with a `---` front matter block holding title and category. */
export function parseDocument(id: string, source: string, raw: string): Document {
  const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(raw);
  const meta = new Map<string, string>();
  for (const line of (m?.[1] ?? "").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) meta.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return { id, title: meta.get("title") ?? id, category: meta.get("category") ?? "general", source, text: (m?.[2] ?? raw).trim() };
}
