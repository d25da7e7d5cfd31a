import type { Answer } from "../../../src/agent/askTool.ts";
import type { Corpus } from "./corpus.ts";

/** A second passage is quoted too when it scores at least this share of the best. @default 0.8 */
export const SECOND_PASSAGE_RATIO = 0.8;

/** Answers by quoting the best-ranked passages, always with their sources. */
export function answerFromCorpus(corpus: Corpus, question: string): Answer {
  const hits = corpus.search(question, 3);
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
  return {
    answer: chosen.map((h) => `${h.text} (${h.title})`).join("\n\n"),
    sources: chosen.map((h) => h.source),
  };
}
