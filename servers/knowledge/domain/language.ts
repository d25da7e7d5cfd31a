import winkNLP, { type ItemEntity, type ItemToken } from "wink-nlp";
import model from "wink-eng-lite-web-model";

/**
 * English analysis for the knowledge agent, by wink-nlp and its lite English model: tokens,
 * part of speech, stop words, lemmas, Porter2 stems and named entities (numbers, amounts,
 * durations, dates). Nothing here is a hand-made word list.
 */
const nlp = winkNLP(model);
const its = nlp.its;
// wink-nlp's types give its.lemma a third parameter its own out() does not accept; at run time
// it is an its-function like its.normal.
const itsLemma = its.lemma as unknown as typeof its.normal;

const porter2 = model.addons.stem;
if (typeof porter2 !== "function") throw new Error("wink-eng-lite-web-model has no stem addon; reinstall the package (npm ci).");
const stems = new Map<string, string>();
/** The model's Porter2 stem of one lower-case word, cached (the corpus and questions reuse few words). */
function stemOf(word: string): string {
  let s = stems.get(word);
  if (s === undefined) {
    s = String((porter2 as (w: string) => string)(word));
    stems.set(word, s);
  }
  return s;
}

/** Parts of speech that never name a topic: "can I", "how", "the", "of", "and", "if", "'s". */
const FUNCTION_POS = new Set(["AUX", "PRON", "DET", "ADP", "CCONJ", "SCONJ", "PART", "PUNCT", "SYM", "INTJ", "SPACE"]);
/** Stop words the model tags as nouns still name topics ("call" in "on call", "amount", "part"). */
const NOUN_POS = new Set(["NOUN", "PROPN"]);

export interface Term {
  /**
   * What the index stores: the stem of the lemma ("paid" → "pay", "policies" → "polici"), and
   * the stem of the word as written when it differs (the tagger may read "stolen" as a verb in a
   * question and as an adjective in a passage: both forms meet).
   */
  terms: string[];
  /** The word as written, lower case. */
  word: string;
  pos: string;
}

/**
 * The words of `text` that can name a topic, as index terms: stop words ("how", "many", "what",
 * "can", "next") and function words go; stop words the model tags as nouns stay; hyphenated
 * compounds also count whole ("on-call" → "oncall", "two-factor" → "twofactor").
 */
export function topicTerms(text: string): Term[] {
  const t = nlp.readDoc(text).tokens();
  const value = t.out(its.value);
  const type = t.out(its.type);
  const pos = t.out(its.pos);
  const stop = t.out(its.stopWordFlag);
  const normal = t.out(its.normal);
  const lemma = t.out(itsLemma);
  const spaces = t.out(its.precedingSpaces);
  const out: Term[] = [];
  for (let i = 0; i < value.length; i++) {
    if (type[i] !== "word" && type[i] !== "number" && type[i] !== "ordinal") continue;
    if (FUNCTION_POS.has(pos[i]!)) continue;
    const base = lemma[i]!.toLowerCase();
    if ((stop[i] || (base !== normal[i] && isStopWord(base))) && !NOUN_POS.has(pos[i]!)) continue;
    // "I'm", "what's": a stop word with a clitic the tokenizer kept attached.
    const clitic = /^([a-z]+)'[a-z]+$/.exec(normal[i]!);
    if (clitic && isStopWord(clitic[1]!)) continue;
    // "how long", "how often", "how soon": the degree "how" asks about is the question's form.
    if (normal[i - 1] === "how" && (pos[i] === "ADJ" || pos[i] === "ADV")) continue;
    out.push({ terms: [...new Set([stemOf(base), stemOf(normal[i]!)])], word: normal[i]!, pos: pos[i]! });
  }
  // Hyphenated compounds: word-word(-word) written without spaces.
  for (let i = 0; i < value.length; i++) {
    const parts = [normal[i]!];
    let j = i;
    while (j + 2 < value.length && value[j + 1] === "-" && spaces[j + 1] === "" && spaces[j + 2] === "") {
      parts.push(normal[j + 2]!);
      j += 2;
    }
    if (parts.length > 1 && parts.every((p) => /^[\p{L}\p{N}]+$/u.test(p))) {
      out.push({ terms: [stemOf(parts.join(""))], word: parts.join("-"), pos: "NOUN" });
      i = j;
    }
  }
  return out;
}

const stopWords = new Map<string, boolean>();
/** Whether the model counts one word as a stop word (cached). */
export function isStopWord(word: string): boolean {
  let stop = stopWords.get(word);
  if (stop === undefined) {
    stop = nlp.readDoc(word).tokens().out(its.stopWordFlag)[0] === true;
    stopWords.set(word, stop);
  }
  return stop;
}

/** Stems of a compound written as separate words ("on call" → "oncall"), for matching compounds. */
export function compoundOf(words: readonly string[]): string {
  return stemOf(words.join("").toLowerCase());
}

/** Every word of `text` as its lower-case lemma, in order ("Relatives died" → "relative die"). */
export function lemmas(text: string): string[] {
  return nlp
    .readDoc(text)
    .tokens()
    .filter((t: ItemToken) => ["word", "number", "ordinal"].includes(t.out(its.type)))
    .out(itsLemma)
    .map((l) => l.toLowerCase());
}

const entities = new Map<string, ReadonlySet<string>>();
/** Kinds of named entity the model finds: CARDINAL, MONEY, PERCENT, DURATION, DATE, TIME, ORDINAL… (cached: passages repeat). */
export function entityTypes(text: string): ReadonlySet<string> {
  let found = entities.get(text);
  if (!found) {
    found = new Set(nlp.readDoc(text).entities().out(its.type));
    entities.set(text, found);
  }
  return found;
}

/** An empty document: its lexicon look-ups are the model's. */
const lexicon = nlp.readDoc("");

/** Whether the English model's lexicon lacks `word` (a misspelling, a made-up word): "meny", "retirment". */
export function isUnknownEnglish(word: string): boolean {
  return lexicon.isOOV(word.toLowerCase());
}

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
/**
 * The stop words one edit (a letter deleted, swapped with the next, replaced or inserted) away
 * from a word the model does not know: "meny" → "many", "wich" → "which". A misspelt question
 * word is then no topic.
 */
export function stopWordsNear(word: string): string[] {
  const w = word.toLowerCase();
  const edits = new Set<string>();
  for (let i = 0; i <= w.length; i++) {
    const [a, b] = [w.slice(0, i), w.slice(i)];
    if (b) edits.add(a + b.slice(1));
    if (b.length > 1) edits.add(a + b[1] + b[0] + b.slice(2));
    for (const c of LETTERS) {
      if (b) edits.add(a + c + b.slice(1));
      edits.add(a + c + b);
    }
  }
  edits.delete(w);
  return [...edits].filter((e) => !lexicon.isOOV(e) && isStopWord(e)).sort();
}

/** Kinds of named entity that are values (amounts, dates), not topics. */
const VALUE_ENTITIES = new Set(["DATE", "TIME", "DURATION", "MONEY", "CARDINAL", "PERCENT", "ORDINAL"]);

/**
 * The lower-case words of `text` inside a value the model finds: a date, time, duration, amount
 * or number ("on a Saturday", "yesterday", "this week", "a 20 dollar taxi", "10 days off").
 */
export function valueWords(text: string): Set<string> {
  const out = new Set<string>();
  nlp
    .readDoc(text)
    .entities()
    .each((e: ItemEntity) => {
      if (VALUE_ENTITIES.has(e.out(its.type))) for (const w of e.tokens().out(its.normal)) out.add(w);
    });
  return out;
}
