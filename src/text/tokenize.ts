/** Words too common to help ranking. */
export const STOPWORDS: ReadonlySet<string> = new Set(
  (
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it its me my " +
    "no not of on or our should so than that the their them then there these they this to too us was we were what " +
    "when where which who whom why will with would you your yours about any all am also just more most much only " +
    "other some such very"
  ).split(" "),
);

/**
 * Lowercases, splits on anything that is not a letter or digit, drops stopwords and
 * applies a light suffix stemmer, so "policies", "policy" and "reimbursements",
 * "reimbursement" meet.
 */
export function tokenize(text: string): string[] {
  const lower = text.toLowerCase().normalize("NFKD");
  const out: string[] = [];
  for (const raw of lower.split(/[^\p{L}\p{N}]+/u)) {
    if (raw.length < 2 || STOPWORDS.has(raw)) continue;
    out.push(stem(raw));
  }
  // Hyphenated compounds also count whole ("on-call" → "oncall"): the parts alone are often
  // stopwords or too common to tell documents apart.
  for (const m of lower.matchAll(/[\p{L}\p{N}]+(?:-[\p{L}\p{N}]+)+/gu)) out.push(stem(m[0].replace(/-/g, "")));
  return out;
}

/** A small, predictable English suffix stemmer (not Porter; enough for ranking). */
export function stem(word: string): string {
  if (word.length <= 3 || /^\d+$/.test(word)) return word;
  const rules: [RegExp, string][] = [
    [/ies$/, "y"],
    [/(ss|us)$/, "$1"],
    [/sses$/, "ss"],
    [/([^s])s$/, "$1"],
    [/ational$/, "ate"],
    [/ization$/, "ize"],
    [/ments?$/, "ment"],
    [/ings?$/, ""],
    [/edly$/, ""],
    [/ed$/, ""],
    [/ly$/, ""],
  ];
  let out = word;
  for (const [re, rep] of rules) {
    if (re.test(out)) {
      const s = out.replace(re, rep);
      if (s.length >= 3) out = s;
      break;
    }
  }
  // A final "e" goes (Porter's step 5), so "hire", "hired" and "hires" all meet at "hir".
  return out.length >= 4 && out.endsWith("e") ? out.slice(0, -1) : out;
}
