import { describe, expect, it } from "vitest";
import { Corpus } from "../../servers/knowledge/domain/corpus.ts";
import { answerFromCorpus } from "../../servers/knowledge/domain/answer.ts";
import { loadDevQuestions, loadHeldOutQuestions, NOT_COVERED, scoreDev, scoreHeldOut } from "../helpers/knowledgeScore.ts";

const corpus = Corpus.load();
const ask = (q: string) => answerFromCorpus(corpus, q);

describe("knowledge ask: question words are not topics", () => {
  it("answers npm start's sample question with the vacation rule, not 'do not mention \"many\"'", () => {
    // Before: The company documents do not mention "many". The closest passage, which may not answer the question: …
    const a = ask("How many vacation days carry over to next year?");
    expect(a.answer).toMatch(
      /^You have 25 working days of paid vacation per calendar year, accrued monthly\. Up to 5 unused days carry over/,
    );
    expect(a.sources).toEqual(["docs/vacation-leave.md"]);
  });

  it.each([
    ["How often do performance reviews happen?", "performance-reviews", "twice a year"],
    ["What is the minimum password length?", "password-policy", "14 characters"],
    ["What do I get paid for being on call?", "on-call", "200 USD"],
    ["How much is the home office allowance?", "equipment", "500 USD"],
  ])("%j is answered from %s without a warning", (q, doc, fact) => {
    const a = ask(q);
    expect(a.answer, a.answer).not.toMatch(NOT_COVERED);
    expect(a.answer).toContain(fact);
    expect(a.sources[0]).toBe(`docs/${doc}.md`);
  });

  it("a topic no document names is answered with an honest no that cites nothing", () => {
    for (const [q, word] of [
      ["Can I bring my dog to the office?", "dog"],
      ["Do employees get stock options?", "stock"],
    ] as const) {
      const a = ask(q);
      expect(a.answer).toMatch(new RegExp(`^The company documents do not cover that: none of them mentions .*"${word}"`));
      expect(a.sources).toEqual([]);
    }
  });

  it("a noun no document uses refuses only when it outweighs what the best passage shares with the question", () => {
    // Before: The company documents do not cover that: none of them mentions "son".
    const a = ask("Does the company pay for my son's health insurance?");
    expect(a.answer).toMatch(
      /^The company documents do not mention "son"\. The closest passage, which may not answer the question:\n\nThe company pays the full premium/,
    );
    expect(a.sources).toEqual(["docs/health-insurance.md"]);
    // "coffee" weighs more than the "office" the passages about offices share.
    expect(ask("Is there free coffee in the office?").sources).toEqual([]);
  });

  it("a passage sharing a specific word with an uncovered question is quoted only with a warning", () => {
    const a = ask("What is the wifi password?");
    expect(a.answer).toMatch(
      /^The company documents do not mention "wifi"\. The closest passage, which may not answer the question:\n\nPasswords must/,
    );
    expect(a.sources).toEqual(["docs/password-policy.md"]);
  });
});

describe("knowledge ask: typos", () => {
  it("reads a word neither the documents nor English know as the nearest one they use, or as a stop word", () => {
    // Before: The company documents do not cover that: none of them mentions "meny".
    const a = ask("how meny sick days do i get per year");
    expect(a.answer).toMatch(/^You have 10 paid sick days per year/);
    expect(a.sources).toEqual(["docs/sick-leave.md"]);
    expect(corpus.respell("Is there a paternty leave and what about my retirment account?")).toBe(
      "Is there a paternity leave and what about my retirement account?",
    );
  });

  it("never respells a real word the documents do not use", () => {
    expect(corpus.respell("Can I bring my dog or my cat, or does the gym have a sauna?")).toBe(
      "Can I bring my dog or my cat, or does the gym have a sauna?",
    );
  });
});

describe("knowledge ask: what employees call a topic, and the values they state", () => {
  it.each([
    // Before: none of them mentions "kids" / "trial" / "coffee" or "shop" or "today" (each cited nothing).
    ["My kids need to be added to my health insurance, what does it cost?", "health-insurance", "dependants"],
    ["How long is the trial period for new hires?", "onboarding", "six months"],
    ["I'm working from a coffee shop today - anything I have to do?", "remote-work", "VPN"],
  ])("%j is answered from %s: everyday words and phrases find the documents' own", (q, doc, fact) => {
    const a = ask(q);
    expect(a.answer, a.answer).not.toMatch(NOT_COVERED);
    expect(a.answer).toContain(fact);
    expect(a.sources[0]).toBe(`docs/${doc}.md`);
  });

  it("a date or amount the question states is the asker's case, never a missing topic", () => {
    // Before: The company documents do not cover that: none of them mentions "today".
    const a = ask("How many sick days do I have left this year, as of today?");
    expect(a.answer).toMatch(/^You have 10 paid sick days per year/);
    expect(a.sources).toEqual(["docs/sick-leave.md"]);
    // Before: The company documents do not mention "tuesday" or "thursday" or "tomorrow". The closest passage, …
    const b = ask("Do I need a doctor's note if I have been sick since Tuesday and it is Thursday tomorrow?");
    expect(b.answer).toMatch(/^Absences longer than 3 consecutive days need a doctor's note/);
    expect(b.sources).toEqual(["docs/sick-leave.md"]);
  });
});

describe("knowledge ask: answers spanning paragraphs, and questions about the handbook", () => {
  it("quotes the document's next paragraph too when it scores nearly as well", () => {
    // Before: only the first paragraph of budgets.md ("Each department receives an annual operating budget …").
    const a = ask("Our team used up the annual budget; who can we ask for more money?");
    expect(a.answer).toMatch(/^Each department receives an annual operating budget/);
    expect(a.answer).toContain("Requests for additional budget go to the Chief Financial Officer");
    expect(a.sources).toEqual(["docs/budgets.md"]);
  });

  it("a word about the documents still tells their passages apart", () => {
    // Before: equipment.md's home office budget ("handbook" and "apply" were left out of the search).
    const a = ask("Which offices does the handbook apply to?");
    expect(a.answer).toMatch(
      /^The handbook is owned by People Operations\. Policies in it apply to every employee in every office: Berlin/,
    );
    expect(a.sources[0]).toBe("docs/handbook-welcome.md");
  });
});

describe("knowledge ask on the development questions (test/data/knowledge-dev.json)", () => {
  it("answers at least 18 of 20 (the hand-rolled BM25 answered 6)", () => {
    const s = scoreDev(loadDevQuestions(), ask);
    expect(s.answered, JSON.stringify(s.misses, null, 2)).toBeGreaterThanOrEqual(18);
  });
});

describe("knowledge ask on held-out set A (test/data/knowledge-heldout.json), a development set since 4a36089", () => {
  // Measured once before tuning: old agent (main at 8bef589) 24 of 45 (23 of 40 answerable, 1 of 5
  // no-answer); 7d219d6 27 of 45 (23, 4). Then tuned on it: 41 of 45 (37 of 40, 4 of 5) at 9b2162e.
  const OLD_AGENT = 24;
  const MEASURED = { overall: 41, answerable: 37, noAnswer: 4 };

  it("scores at least what was measured, and at least the old agent, by its author's rule", () => {
    const s = scoreHeldOut(loadHeldOutQuestions(), ask);
    const misses = JSON.stringify(s.misses, null, 2);
    expect(s.total).toBe(45);
    expect(s.answered, misses).toBeGreaterThanOrEqual(MEASURED.overall);
    expect(s.answered, misses).toBeGreaterThanOrEqual(OLD_AGENT);
    expect(s.answerable.answered, misses).toBeGreaterThanOrEqual(MEASURED.answerable);
    expect(s.noAnswer.answered, misses).toBeGreaterThanOrEqual(MEASURED.noAnswer);
  });
});

describe("knowledge ask on held-out set B (test/data/knowledge-heldout-b.json, never used for tuning)", () => {
  // Measured once each, after the changes tuned on the dev set and set A were final (9b2162e):
  // the old agent (main at 8bef589) answered 14 of 45 (14 of 40 answerable, 0 of 5 no-answer);
  // this one 25 of 45 (21 of 40, 4 of 5). By first-cited document alone: old 22 of 40, new 24 of 40.
  const OLD_AGENT = 14;
  const MEASURED = { overall: 25, answerable: 21, noAnswer: 4 };

  it("scores at least what was measured, and at least the old agent, by its author's rule", () => {
    const s = scoreHeldOut(loadHeldOutQuestions(new URL("../data/knowledge-heldout-b.json", import.meta.url)), ask);
    const misses = JSON.stringify(s.misses, null, 2);
    expect(s.total).toBe(45);
    expect(s.answered, misses).toBeGreaterThanOrEqual(MEASURED.overall);
    expect(s.answered, misses).toBeGreaterThanOrEqual(OLD_AGENT);
    expect(s.answerable.answered, misses).toBeGreaterThanOrEqual(MEASURED.answerable);
    expect(s.noAnswer.answered, misses).toBeGreaterThanOrEqual(MEASURED.noAnswer);
  });
});
