/**
 * Everyday words for what tool descriptions and field names say in their own terms: query
 * expansion for ranking (a thesaurus, as search engines use), not phrasings of questions.
 * Each entry adds its words to a question that contains the key (matched on word stems).
 */
export const THESAURUS: readonly (readonly [RegExp, string])[] = [
  [/\btakes?[- ]home\b|\bafter (tax|deductions?)\b|\bearns?\b|\bpaid\b|\bwages?\b|\bsalary\b/, "net pay"],
  [/\btax(es)?\b/, "income tax net pay"],
  [/\b(annual(ly)?|yearly|per year|a year|each year)\b/, "annual"],
  [/\b(monthly|per month|a month|each month)\b/, "monthly"],
  [/\b(boss|supervisor|line manager)\b/, "manager"],
  [/\b(team|reportees|subordinates)\b/, "reports"],
  [/\b(based|city|office|located|work from|where)\b/, "location"],
  [/\b(joined|join|started|start date|hired|how long|been with|tenure|seniority)\b|\bwhen did\b.*\bstart\b/, "hire date"],
  [/\b(role|job|position)\b/, "title"],
  [/\b(e-?mail|contact|address)\b/, "email"],
  [/\b(holiday|holidays|pto|time off|days off|vacation)\b/, "vacation leave"],
  [/\b(sick|ill|illness)\b/, "sick leave"],
  [/\b(left|remaining|still have|balance|taken|used)\b/, "remaining balance"],
  [/\b(book|schedule|put( .*)? down for|take|off on|off from)\b/, "request leave"],
  [/\b(reimburs\w*|claim|file|expenses?|charge|spent|paid for)\b/, "submit expense"],
  [/\b(bought|buy|purchased?|acquired)\b/, "purchased purchase"],
  [/\b(budget|cost cent(re|er)|allocation|allocated|over budget|used up|money|spend|spending)\b/, "budget remaining allocated spent"],
  [/\b(everyone|staff|people|employees|who works|headcount|members?)\b/, "employee directory"],
  [/\b(look ?up|details|profile|record)\b/, "directory record"],
  [/\b(rules?|guidelines?|allowed|permitted|am i allowed|can i|may i)\b/, "policy handbook"],
  [/\b(dinner|lunch|breakfast|meal|meals|food|coffee)\b/, "meals"],
  [/\b(taxi|flight|hotel|train|trip|travel)\b/, "travel"],
  [/\b(licen[cs]e|subscription|saas|software)\b/, "software"],
  [/\b(course|conference|training|workshop|book)\b/, "training"],
  [/\b(laptop|monitor|keyboard|chair|headset|equipment)\b/, "equipment"],
];

/** The question's words plus what the thesaurus adds for it. */
export function expand(text: string): string {
  const lower = text.toLowerCase();
  const extra = THESAURUS.filter(([re]) => re.test(lower)).map(([, words]) => words);
  return extra.length ? `${text} ${extra.join(" ")}` : text;
}

/** Adjectives that pick one member of a list by a date field: newest (latest date) or longest-serving (earliest). */
export const SELECTORS: readonly { re: RegExp; order: "max" | "min"; words: string }[] = [
  { re: /^(newest|latest|most recent|most recently hired|last hired|youngest)$/, order: "max", words: "newest" },
  { re: /^(longest[- ]serving|oldest|earliest|most senior|first hired|longest[- ]tenured)$/, order: "min", words: "longest-serving" },
];

/** Words that say "the person/thing itself" rather than an attribute of it. */
export const IDENTITY_WORDS =
  /^(who|whom|whose|which|name|names|person|people|list|show|tell|give|me|is|are|was|were|the|a|an|s|of|do|does|did|what|what's|who's|please|and|about|get|find|there)$/;
