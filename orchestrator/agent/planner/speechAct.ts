import { lemmaOf, tokens, type Token } from "./language.ts";

/**
 * What a sentence does, read from its form (wink-nlp's parts of speech), not from its words:
 * - `question`: asks about data ("Who…", "Does the budget cover…?", "Bob's open tickets"), or
 *   asks to be shown or told something ("show me…", "can you tell me…");
 * - `request`: asks the mesh to act ("Book…", "Please file…", "Can you open…", "I want to
 *   submit…"), with the verb of the action;
 * - `unclear`: could be either ("Can I book 3 days off?": a permission question or a request;
 *   "Open tickets for Bob?"): a state-changing tool is never planned, and if one is what would
 *   fit, the planner asks back.
 *
 * A clause that starts with a name the mesh knows ("Bob Okafor vacation balance") is a question:
 * the planner says so before asking this.
 *
 * Only a `request` may lead to a tool that changes state, and only to one whose own action verb
 * (name, title or description) is of the same kind as the request's (see `actionClass`).
 */
export type SpeechAct =
  | { kind: "question" }
  /** Says something ("I need a new charger", "my laptop is broken", "I am Wei Zhang"): context, never an action. */
  | { kind: "statement" }
  /** `weak`: a verb only in the tagger's imperative context ("expense limits for travel" may be a noun phrase). */
  | { kind: "request" | "unclear"; verb: string; weak?: boolean };

const WH = new Set([
  "what",
  "what's",
  "whats",
  "who",
  "who's",
  "whos",
  "whom",
  "whose",
  "which",
  "when",
  "where",
  "where's",
  "why",
  "how",
  "how's",
]);
const POLITE = new Set([
  "please",
  "pls",
  "plz",
  "kindly",
  "hey",
  "hi",
  "hello",
  "ok",
  "okay",
  "so",
  "now",
  "also",
  "then",
  "just",
  "and",
  "quickly",
]);
const MODAL = new Set(["can", "could", "would", "will", "wo"]);
/** Verbs that ask to see or be told (a request for information is a question). */
const INFO = new Set([
  "show",
  "tell",
  "list",
  "give",
  "find",
  "get",
  "look",
  "check",
  "display",
  "say",
  "let",
  "see",
  "fetch",
  "retrieve",
  "pull",
  "print",
  "read",
  "summarize",
  "summarise",
  "explain",
  "describe",
  "compare",
  "count",
  "calculate",
  "compute",
  "know",
  "remind",
  "share",
  "help",
  "confirm",
  "verify",
  "search",
  "lookup",
  "name",
  "work",
  "figure",
]);

/** Reads the speech act of one clause. */
export function speechAct(clause: string): SpeechAct {
  const text = clause.trim();
  const asked = /\?\s*$/.test(text);
  // The tagger reads a capitalised first word as a name ("Book", "Open"): lower-case it.
  const t = tokens(text.replace(/^\W*\w/, (c) => c.toLowerCase())).filter((x) => x.pos !== "PUNCT" || x.value === ":");
  let i = 0;
  while (t[i] && (POLITE.has(t[i]!.normal) || t[i]!.pos === "INTJ")) i++;
  const w = (k: number) => t[i + k]?.normal ?? "";
  const first = t[i];
  if (!first) return { kind: "question" };
  if (WH.has(first.normal)) return { kind: "question" };
  // "can/could/would/will you (please) <verb> …": a request, unless it asks to be told.
  if (MODAL.has(first.normal) && w(1) === "you") {
    let k = 2;
    while (POLITE.has(w(k))) k++;
    if (w(k) === "mind") k++;
    return act(t[i + k], "request");
  }
  // "can/may/should I <verb> …": a permission or how-to question that could be a request.
  if (["can", "could", "may", "should", "shall"].includes(first.normal) && ["i", "we"].includes(w(1))) {
    return act(t[i + 2], "unclear");
  }
  // "I (would) like / want / need / wish (you) to <verb>": a request.
  if (["i", "we", "i'd", "we'd", "i'm", "im", "we're"].includes(first.normal)) {
    let k = 1;
    while (["would", "'d", "d", "really", "just", "do", "also"].includes(w(k))) k++;
    if (["like", "want", "need", "wish", "love", "have"].includes(lemmaOf(w(k)))) {
      k++;
      if (w(k) === "you" || w(k) === "someone") k++;
      if (w(k) === "to") return act(t[i + k + 1], "request");
      // "I want know how many…" (a learner's English): the verb follows directly.
      if (t[i + k]?.pos === "VERB") return act(t[i + k], "request");
    }
    return asked ? { kind: "question" } : { kind: "statement" };
  }
  if (["my", "our", "i'm", "im", "we're"].includes(first.normal) && !asked && t.some((x) => x.pos === "VERB" || x.pos === "AUX"))
    return { kind: "statement" };
  if (first.normal === "let's" || (first.normal === "let" && w(1) === "'s")) return act(t[i + (w(1) === "'s" ? 2 : 1)], "request");
  if (first.normal === "go" && w(1) === "ahead" && w(2) === "and") return act(t[i + 3], "request");
  if (first.pos === "AUX") return { kind: "question" };
  // An imperative: a verb in its base form first ("book 2 days…", "open a ticket…"). Clear when
  // the tagger says verb or an object follows at once (a determiner, pronoun, number or name);
  // a word that may be a noun or an adjective with no object ("close ticket HD-2005", "open
  // tickets for Bob") is unclear.
  if (first.lemma !== first.normal || !["VERB", "NOUN", "ADJ", "PROPN"].includes(first.pos)) return { kind: "question" };
  const object = t[i + 1];
  const objectNext = object !== undefined && ["DET", "PRON", "NUM", "PROPN"].includes(object.pos) && object.normal !== "'s";
  // "pay of Bob", "cost of a course": a noun phrase.
  if (object?.normal === "of") return { kind: "question" };
  const verbWithPlease = () => {
    if (!object || object.pos === "ADP" || object.normal === "'s") return false;
    const [, again] = tokens(
      `please ${t
        .slice(i)
        .map((x) => x.value)
        .join(" ")}`,
    );
    return again?.pos === "VERB";
  };
  // "please close ticket HD-2005": a word in its base form after "please" is a verb.
  const pleaded = [...t.slice(0, i), ...t.slice(-1)].some((x) => ["please", "pls", "plz", "kindly"].includes(x.normal));
  if ((first.pos === "VERB" || objectNext || pleaded) && !asked) return act(first, "request");
  if (verbWithPlease() && !asked) {
    const weak = act(first, "request");
    return weak.kind === "request" ? { ...weak, weak: true } : weak;
  }
  return act(first, "unclear");
}

function act(verb: Token | undefined, kind: "request" | "unclear"): SpeechAct {
  if (!verb) return { kind: "question" };
  const lemma = verb.lemma;
  if (INFO.has(lemma) || INFO.has(verb.normal)) return { kind: "question" };
  return { kind, verb: lemma };
}

/**
 * Kinds of action, so that the verb of a request meets the verb of a tool ("raise a ticket" →
 * open_ticket, "book a taxi expense" → submit_expense, "process the payroll" → run_payroll).
 * General English verbs of creating, removing, changing and running things; a verb in none of
 * them is its own kind.
 */
const ACTIONS: readonly (readonly string[])[] = [
  [
    "open",
    "create",
    "raise",
    "file",
    "submit",
    "log",
    "add",
    "make",
    "register",
    "book",
    "request",
    "schedule",
    "lodge",
    "enter",
    "record",
    "claim",
    "expense",
    "apply",
    "reserve",
    "put",
    "issue",
    "report",
  ],
  ["cancel", "close", "delete", "remove", "withdraw", "revoke", "drop", "resolve", "archive", "deregister"],
  ["update", "change", "edit", "modify", "set", "move", "reassign", "assign", "rename", "approve", "reject", "escalate", "reopen", "mark"],
  ["run", "process", "generate", "execute", "trigger", "launch", "start", "pay", "kick"],
];

/**
 * Whether a request's verb asks for what a tool does: the same kind of action; a weak imperative
 * whose verb is the thing the tool acts on ("expense limits…" and submit_expense) is a noun.
 */
export function asksFor(act: SpeechAct, tool: { name: string }, actions: readonly string[]): boolean {
  if (act.kind === "question" || act.kind === "statement" || !actions.includes(actionClass(act.verb))) return false;
  return !(
    act.weak &&
    tool.name
      .toLowerCase()
      .split(/[_\-.]/)
      .slice(1)
      .includes(act.verb)
  );
}

/** The kind of action a verb (a lemma) names. */
export function actionClass(verb: string): string {
  const i = ACTIONS.findIndex((c) => c.includes(verb));
  return i >= 0 ? `#${i}` : verb;
}

/**
 * The verbs a tool acts with: the first word of its name (`open_ticket`), of its title ("Open a
 * helpdesk ticket") and of its description ("Books leave…"), as lemmas.
 */
export function toolVerbs(tool: { name: string; title?: string; description?: string }): string[] {
  const firstWord = (s: string | undefined) => /^[^\p{L}]*(\p{L}+)/u.exec(s ?? "")?.[1];
  const words = [tool.name.split(/[_\-.]|(?=[A-Z])/)[0], firstWord(tool.title), firstWord(tool.description)].filter(
    (w): w is string => !!w,
  );
  return [...new Set(words.map(lemmaOf))];
}
