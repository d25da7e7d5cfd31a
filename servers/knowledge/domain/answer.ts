import type { Answer } from "../../../src/agent/askTool.ts";
import { tokenize } from "../../../src/text/tokenize.ts";
import type { Corpus } from "./corpus.ts";

/** Score multiplier for a document's first paragraph when answering. @default 1.3 */
export const LEAD_PARAGRAPH_BOOST = 1.3;

/** A second passage is quoted too when it scores at least this share of the best. @default 0.8 */
export const SECOND_PASSAGE_RATIO = 0.8;

/**
 * Words a question's form asks for but never says: "how long" wants a duration, "how much"
 * an amount. BM25 sees only the words present, so the answerer adds them to the query.
 */
export const QUESTION_EXPANSIONS: readonly (readonly [RegExp, string])[] = [
  [/\bhow long\b/i, "weeks days months years"],
  [/\bhow (much|expensive)\b|\bcost\b|\bprice\b/i, "usd amount limit budget"],
  [/\bhow many\b/i, "days number"],
  [/\bwhen\b/i, "date day month deadline within"],
];

/** The question plus the words its form implies (see QUESTION_EXPANSIONS). */
export function expandQuestion(question: string): string {
  return [question, ...QUESTION_EXPANSIONS.filter(([re]) => re.test(question)).map(([, words]) => words)].join(" ");
}

/** Words of a question that ask nothing about a topic (a document need not contain them). */
const GENERIC = new Set(
  "tell please explain know want need get give say find like ok okay hi hello thanks thank let lets allowed happen happens anyone someone company".split(
    " ",
  ),
);

/**
 * Words about asking or reading rather than a topic ("which rules apply to leave", "where can I
 * read about leave"): left out of the search when the question has other words, so a passage is
 * not chosen for saying "rules" or "read".
 */
const ABOUT_THE_ASKING = new Set(
  "rule rules policy policies apply applies applied read reading say says said document documents guideline guidelines".split(" "),
);

/** The question without the words that ask nothing about a topic (unless nothing else is left). */
function topicOf(question: string): string {
  const words = question.split(/\s+/);
  const kept = words.filter((w) => {
    const bare = w.toLowerCase().replace(/[^\p{L}\p{N}'-]/gu, "");
    return !GENERIC.has(bare) && !ABOUT_THE_ASKING.has(bare);
  });
  return tokenize(kept.join(" ")).length > 0 ? kept.join(" ") : question;
}

/** Answers by quoting the best-ranked passages, always with their sources. */
export function answerFromCorpus(corpus: Corpus, question: string): Answer {
  // What the question asks about that no document mentions: the best passage is then only
  // the closest one, and the answer says so instead of sounding sure of a neighbouring topic.
  const missing = corpus.unknownWords(question).filter((w) => !GENERIC.has(w));
  // A document's lead paragraph usually states the rule; later ones qualify it.
  // A question that names a document ("what does the expense policy say about meals") is
  // about that document: its passages are ranked by the rest of the question.
  const named = corpus
    .list()
    .find((d) => new RegExp(`\\b${d.title.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`).test(question.toLowerCase()));
  const rest = named ? question.toLowerCase().replace(named.title.toLowerCase(), " ") : "";
  const within =
    named && corpus.unknownWords(rest).length < tokenize(rest).length
      ? corpus.search(expandQuestion(rest), 50).filter((h) => h.docId === named.id)
      : [];
  const hits = (within.length > 0 ? within : corpus.search(expandQuestion(topicOf(question)), 5))
    .map((h) => ({ ...h, score: h.index === 0 ? h.score * LEAD_PARAGRAPH_BOOST : h.score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, 3);
  const best = hits[0];
  if (!best) {
    return {
      answer: "The company documents say nothing I can find about that. Try other words, or list_documents to browse.",
      sources: [],
    };
  }
  const chosen = [
    best,
    ...hits
      .slice(1)
      .filter((h) => h.score >= best.score * SECOND_PASSAGE_RATIO && h.docId !== best.docId)
      .slice(0, 1),
  ];
  const quoted = chosen.map((h) => `${h.text} (${h.title})`).join("\n\n");
  return {
    answer: missing.length
      ? `The company documents do not mention ${missing.map((w) => `"${w}"`).join(" or ")}. The closest passage, which may not answer the question:\n\n${quoted}`
      : quoted,
    sources: chosen.map((h) => h.source),
  };
}
