import type { Answer } from "../../../src/agent/askTool.ts";
import type { Corpus, QueryWord, SearchHit } from "./corpus.ts";
import { entityTypes, lemmas } from "./language.ts";

/** Score multiplier for a document's first paragraph: it usually states the rule. @default 1.2 */
export const LEAD_PARAGRAPH_BOOST = 1.2;

/** Score multiplier for a passage holding the kind of value the question asks for. @default 1.3 */
export const ANSWER_TYPE_BOOST = 1.3;

/**
 * The best passage answers the question when it holds at least this share of the weight of the
 * question's topic words that the documents use (rare words weigh more). @default 0.3
 */
export const CONFIDENT_SHARE = 0.3;

/** A second passage (of another document) is quoted too when it scores this share of the best. @default 0.8 */
export const SECOND_PASSAGE_RATIO = 0.8;

/**
 * Another paragraph of the best passage's document is quoted too when it scores this share of
 * the best: an answer often spans two ("annual budget" in one, who grants more in the next). @default 0.7
 */
export const SIBLING_PASSAGE_RATIO = 0.7;

/**
 * What a question's form asks for, as the named-entity types (wink-nlp) of a passage that holds
 * it: "how many" wants a number, "how long" a duration, "when" a date.
 */
export const ANSWER_TYPES: readonly (readonly [RegExp, readonly string[]])[] = [
  [/\bhow (many|much)\b|\bwhat percent/, ["CARDINAL", "MONEY", "PERCENT", "DURATION"]],
  [/\bhow long\b/, ["DURATION", "DATE"]],
  [/\bhow often\b/, ["DURATION", "DATE"]],
  [/\bwhen\b|\bwhat (date|day|time)\b|\bdeadline\b/, ["DATE", "TIME", "ORDINAL", "DURATION"]],
  [/\b(budget|pay|paid)\b/, ["MONEY", "PERCENT"]],
];

/**
 * Nouns that name the kind of value a question wants, not its topic: "the hotel limit", "the
 * referral bonus amount", "the minimum password length" ask what "how much" and "how long" ask.
 * They choose the entity types a passage should hold and are left out of the topic. Lemmas.
 */
export const ANSWER_NOUNS: ReadonlyMap<string, readonly string[]> = new Map(
  (
    [
      [
        ["limit", "maximum", "max", "minimum", "min", "amount", "cost", "price", "rate", "number"],
        ["CARDINAL", "MONEY", "PERCENT"],
      ],
      [["percentage", "percent"], ["PERCENT"]],
      [
        ["length", "duration"],
        ["DURATION", "CARDINAL"],
      ],
      [
        ["deadline", "date"],
        ["DATE", "TIME", "ORDINAL", "DURATION"],
      ],
    ] as const
  ).flatMap(([words, types]) => words.map((w) => [w, types] as const)),
);

/**
 * Words about asking or about the documents themselves, not a topic ("which rules apply to
 * leave", "where can I read about leave", "tell me the policy on meals"): every document is a
 * policy, so a passage must not be chosen for saying "rules" or "read". Minor words (see
 * `topicOf`) when the question has other topic words. Lemmas.
 */
export const ABOUT_THE_ASKING: ReadonlySet<string> = new Set(
  "rule policy apply read say document guideline handbook tell explain know want happen allow allowed ok okay hi hello thanks thank please company"
    .split(" ")
    .flatMap((w) => lemmas(w)),
);

/**
 * The question's topic words; the words about the asking are minor (QueryWord.minor) unless
 * nothing else is left: "which office locations does the employee handbook apply to" is about
 * offices, and "the handbook" still tells its passages from the other documents' about offices.
 */
export function topicOf(corpus: Corpus, question: string): QueryWord[] {
  const words = corpus.queryWords(question);
  const asking = (w: QueryWord) => lemmas(w.word).every((l) => ABOUT_THE_ASKING.has(l) || ANSWER_NOUNS.has(l));
  return words.some((w) => !asking(w)) ? words.map((w) => (asking(w) ? { ...w, minor: true } : w)) : words;
}

/** Nouns name what a question is about; verbs, adjectives and adverbs count half ("spend", "minimum"). */
export const NON_NOUN_WEIGHT = 0.5;

/** A minor word (QueryWord.minor: a value the question states, a word about the asking) weighs this much as a noun. @default 0.25 */
export const MINOR_WEIGHT = 0.25;

const isNoun = (w: QueryWord) => !w.minor && (w.pos === "NOUN" || w.pos === "PROPN");

const weightOf = (corpus: Corpus, w: QueryWord) =>
  Math.max(...w.terms.map((t) => corpus.weight(t))) * (w.minor ? MINOR_WEIGHT : isNoun(w) ? 1 : NON_NOUN_WEIGHT);

/**
 * How much of the weight of the question's known topic words a passage holds (0..1), the ones it
 * lacks, and how much of the weight of all its topic words it holds (`ofAll`): a noun no document
 * uses weighs as much as the rarest word can, so "dog" outweighs the "office" a passage shares.
 */
export function share(corpus: Corpus, words: readonly QueryWord[], hit: SearchHit): { share: number; lacking: QueryWord[]; ofAll: number } {
  // A word no document uses cannot tell passages apart: it only counts in `ofAll`.
  const known = words.filter((w) => w.terms.some((t) => corpus.passagesWith(t) > 0));
  const total = known.reduce((s, w) => s + weightOf(corpus, w), 0);
  const lacking = known.filter((w) => !w.terms.some((t) => hit.matched.includes(t)));
  const held = total - lacking.reduce((s, w) => s + weightOf(corpus, w), 0);
  const missing = uncoveredOf(corpus, words).reduce((s, w) => s + weightOf(corpus, w), 0);
  return { share: total > 0 ? held / total : 0, lacking, ofAll: total + missing > 0 ? held / (total + missing) : 0 };
}

/** The question's nouns no document uses (values it states aside): "dog", "gym". */
export function uncoveredOf(corpus: Corpus, words: readonly QueryWord[]): QueryWord[] {
  return words.filter((w) => isNoun(w) && w.terms.every((t) => corpus.passagesWith(t) === 0));
}

/** Re-ranks hits: a document's lead paragraph and a passage holding the asked-for kind of value go up. */
function rerank(corpus: Corpus, question: string, words: readonly QueryWord[], hits: readonly SearchHit[]): SearchHit[] {
  const q = question.toLowerCase();
  const wanted = new Set([
    ...ANSWER_TYPES.filter(([re]) => re.test(q)).flatMap(([, types]) => types),
    ...lemmas(question).flatMap((l) => ANSWER_NOUNS.get(l) ?? []),
  ]);
  return hits
    .map((h) => {
      let score = h.score;
      if (h.index === 0) score *= LEAD_PARAGRAPH_BOOST;
      if (wanted.size > 0 && [...entityTypes(h.text)].some((t) => wanted.has(t))) score *= ANSWER_TYPE_BOOST;
      return { ...h, score };
    })
    .sort((a, b) => b.score - a.score);
}

const quote = (hits: readonly SearchHit[]) => hits.map((h) => `${h.text} (${h.title})`).join("\n\n");
const listed = (words: readonly QueryWord[]) => [...new Set(words.map((w) => `"${w.word}"`))].join(" or ");

/**
 * A question with nouns no document uses is answered (with a warning) only when the best passage
 * holds at least this share of the weight of all its topic words (`share().ofAll`): "the receipt
 * for a taxi ride" still finds the receipt rule, "my dog at the office" finds nothing. @default 1/3
 */
export const COVERED_SHARE = 1 / 3;

/**
 * Answers by quoting the passage that matches the question, with its source. A question whose
 * topic no document names ("Can I bring my dog to the office?") is told so, citing nothing:
 * its missing nouns outweigh what the best passage shares with it (COVERED_SHARE). When they do
 * not ("How many days off do I get if my grandmother passes away?"), and when a passage holds only
 * part of the question's weight, that passage is quoted with a warning naming what it lacks.
 */
export function answerFromCorpus(corpus: Corpus, question: string): Answer {
  const asked = corpus.respell(question);
  const words = topicOf(corpus, asked);
  const hits = rerank(corpus, asked, words, corpus.search(asked, 8, words));
  const best = hits[0];
  const uncovered = uncoveredOf(corpus, words);
  const notCovered = (): Answer => ({
    answer: uncovered.length
      ? `The company documents do not cover that: none of them mentions ${listed(uncovered)}. list_documents shows what they cover.`
      : "The company documents say nothing I can find about that. Try other words, or list_documents to browse.",
    sources: [],
  });
  if (!best) return notCovered();
  const { share: held, lacking, ofAll } = share(corpus, words, best);
  if (uncovered.length === 0 && held >= CONFIDENT_SHARE) {
    const second = hits
      .slice(1)
      .find(
        (h) => h.docId !== best.docId && h.score >= best.score * SECOND_PASSAGE_RATIO && share(corpus, words, h).share >= CONFIDENT_SHARE,
      );
    const sibling = hits
      .slice(1)
      .find(
        (h) => h.docId === best.docId && h.score >= best.score * SIBLING_PASSAGE_RATIO && share(corpus, words, h).share >= CONFIDENT_SHARE,
      );
    const chosen = [best, ...(sibling ? [sibling] : []), ...(second ? [second] : [])];
    return { answer: quote(chosen), sources: [...new Set(chosen.map((h) => h.source))] };
  }
  if (uncovered.length > 0 && ofAll < COVERED_SHARE) return notCovered();
  return {
    answer: `${
      uncovered.length
        ? `The company documents do not mention ${listed(uncovered)}. The closest passage, which`
        : `The closest passage does not mention ${listed(lacking)} and`
    } may not answer the question:\n\n${quote([best])}`,
    sources: [best.source],
  };
}
