import { readFileSync } from "node:fs";
import type { Answer } from "../../src/agent/askTool.ts";

/** One development question: `docs` null means the documents do not cover it. */
export interface DevQuestion {
  question: string;
  docs: string[] | null;
  expect?: string[];
}

export interface Miss {
  question: string;
  why: string;
  sources: string[];
  answer: string;
}

export interface Score {
  answered: number;
  total: number;
  misses: Miss[];
}

export function loadDevQuestions(file = new URL("../data/knowledge-dev.json", import.meta.url)): DevQuestion[] {
  return (JSON.parse(readFileSync(file, "utf8")) as { questions: DevQuestion[] }).questions;
}

/** Says the documents do not cover the question, or that the passage it quotes may not answer it. */
export const NOT_COVERED = /^The company documents (do not|say nothing)|^The closest passage|may not answer the question/;

/**
 * The development set's rule (test/data/knowledge-dev.json): a covered question is answered when
 * its first source is one of `docs`, every `expect` string is in the answer and the answer does
 * not say the documents do not cover it; an uncovered one when no source is cited.
 */
export function judgeDev(q: DevQuestion, a: Answer): string | undefined {
  if (q.docs === null)
    return a.sources.length === 0 ? undefined : `cited ${a.sources.join(", ")} for a question the documents do not cover`;
  const first = a.sources[0];
  if (!first || !q.docs.some((d) => first === `docs/${d}.md`))
    return `first source ${first ?? "(none)"}, expected one of ${q.docs.join(", ")}`;
  if (NOT_COVERED.test(a.answer)) return "said the documents do not cover it, or that its passage may not answer it";
  const absent = (q.expect ?? []).filter((e) => !a.answer.toLowerCase().includes(e.toLowerCase()));
  return absent.length ? `answer lacks ${absent.map((e) => `"${e}"`).join(", ")}` : undefined;
}

export function scoreDev(questions: readonly DevQuestion[], answer: (q: string) => Answer): Score {
  const misses: Miss[] = [];
  for (const q of questions) {
    const a = answer(q.question);
    const why = judgeDev(q, a);
    if (why) misses.push({ question: q.question, why, sources: a.sources, answer: a.answer });
  }
  return { answered: questions.length - misses.length, total: questions.length, misses };
}

/** One held-out question (test/data/knowledge-heldout.json): `source` null means no document answers it. */
export interface HeldOutQuestion {
  id: string;
  question: string;
  source: string | null;
  alsoOk: string[];
  mustMention: string[];
}

export function loadHeldOutQuestions(file = new URL("../data/knowledge-heldout.json", import.meta.url)): HeldOutQuestion[] {
  return (JSON.parse(readFileSync(file, "utf8")) as { questions: HeldOutQuestion[] }).questions;
}

/** Says the documents do not cover the question, or that it does not know. */
export const SAYS_NOT_COVERED = /do not cover|say nothing|does not know|do not know|not covered|do not mention/i;

/**
 * The held-out set's rule (its author's README): an answerable question is answered when the
 * first document cited is `source` or one of `alsoOk` and every `mustMention` string is in the
 * answer (case-insensitive); a no-answer question when the answer says the documents do not
 * cover it and no document passage is given (no source cited).
 */
export function judgeHeldOut(q: HeldOutQuestion, a: Answer): string | undefined {
  if (q.source === null) {
    if (a.sources.length > 0) return `gave a passage of ${a.sources.join(", ")} for a question no document answers`;
    return SAYS_NOT_COVERED.test(a.answer) ? undefined : "did not say the documents do not cover it";
  }
  const ok = [q.source, ...q.alsoOk].map((f) => `docs/${f}`);
  const first = a.sources[0];
  if (!first || !ok.includes(first)) return `cited ${first ?? "nothing"}, expected ${ok.join(" or ")}`;
  const absent = q.mustMention.filter((m) => !a.answer.toLowerCase().includes(m.toLowerCase()));
  return absent.length ? `answer lacks ${absent.map((m) => `"${m}"`).join(", ")}` : undefined;
}

export interface HeldOutScore extends Score {
  answerable: { answered: number; total: number };
  noAnswer: { answered: number; total: number };
}

export function scoreHeldOut(questions: readonly HeldOutQuestion[], answer: (q: string) => Answer): HeldOutScore {
  const misses: Miss[] = [];
  const tally = { answerable: { answered: 0, total: 0 }, noAnswer: { answered: 0, total: 0 } };
  for (const q of questions) {
    const a = answer(q.question);
    const why = judgeHeldOut(q, a);
    const bucket = q.source === null ? tally.noAnswer : tally.answerable;
    bucket.total++;
    if (why) misses.push({ question: `${q.id} ${q.question}`, why, sources: a.sources, answer: a.answer });
    else bucket.answered++;
  }
  return { answered: questions.length - misses.length, total: questions.length, misses, ...tally };
}
