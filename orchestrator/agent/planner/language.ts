import * as chrono from "chrono-node";
import winkNLP, { type ItemEntity } from "wink-nlp";
import model from "wink-eng-lite-web-model";

/**
 * The planner's English, from libraries rather than word lists: wink-nlp with its lite English
 * model (tokens, parts of speech, lemmas, number and money entities) and chrono-node (dates,
 * relative ones included). The knowledge agent loads its own copy (servers/ are separate
 * processes); the model is small (about 1 MB) and loads once per process.
 */
const nlp = winkNLP(model);
const its = nlp.its;
// wink-nlp's types give its.lemma a third parameter its own out() does not accept; at run time
// it is an its-function like its.normal.
const itsLemma = its.lemma as unknown as typeof its.normal;

export interface Token {
  /** As written. */
  value: string;
  /** Lower case. */
  normal: string;
  lemma: string;
  /** Universal part of speech (VERB, NOUN, AUX, PRON, DET, ADP, NUM, PROPN, PUNCT…). */
  pos: string;
}

/** Tokens of `text` with their part of speech and lemma. */
export function tokens(text: string): Token[] {
  const t = nlp.readDoc(text).tokens();
  const value = t.out(its.value);
  const normal = t.out(its.normal);
  const lemma = t.out(itsLemma);
  const pos = t.out(its.pos);
  return value.map((v, i) => ({ value: v, normal: normal[i]!, lemma: String(lemma[i]).toLowerCase(), pos: pos[i]! }));
}

/** The lemma of one word ("Books" → "book", "opens" → "open", "raised" → "raise"). */
export function lemmaOf(word: string): string {
  const [t] = tokens(word.toLowerCase());
  return t ? t.lemma : word.toLowerCase();
}

/** An amount the question states: its value and, when said, its currency. */
export interface Amount {
  value: number;
  currency?: string;
  /** The words it was written as ("1,500 USD", "$2k"). */
  text: string;
}

const CURRENCY: Record<string, string> = {
  $: "USD",
  usd: "USD",
  dollar: "USD",
  dollars: "USD",
  bucks: "USD",
  "€": "EUR",
  eur: "EUR",
  euro: "EUR",
  euros: "EUR",
  "£": "GBP",
  gbp: "GBP",
  pound: "GBP",
  pounds: "GBP",
};
const MAGNITUDE: Record<string, number> = { k: 1e3, thousand: 1e3, m: 1e6, mn: 1e6, million: 1e6 };

/**
 * Money and plain numbers the text states, in order, by wink-nlp's MONEY and CARDINAL entities:
 * thousands separators ("1,500 USD" is 1500), a magnitude after them ("$2k", "1.5 thousand"),
 * the currency from a symbol or word. Numbers inside dates, ids (E1002, HD-2001) and durations
 * ("2 days") are not amounts.
 */
export function amounts(text: string): Amount[] {
  const doc = nlp.readDoc(text);
  const out: Amount[] = [];
  const t = doc.tokens();
  const value = t.out(its.value);
  const spaces = t.out(its.precedingSpaces);
  doc.entities().each((e: ItemEntity) => {
    const d = e.out(its.detail) as { value: string; type: string };
    if (d.type !== "MONEY" && d.type !== "CARDINAL") return;
    const [first, last] = e.out(its.span) as unknown as [number, number];
    // A number glued to letters or a hyphen is part of an id or a date, not an amount.
    const before = value[first - 1];
    if (before !== undefined && spaces[first] === "" && /[\p{L}\d-]$/u.test(before)) return;
    const digits = /(\d[\d,]*(?:\.\d+)?)/.exec(d.value);
    if (!digits) return;
    let n = Number(digits[1]!.replace(/,(?=\d{3}\b)/g, ""));
    if (!Number.isFinite(n)) return;
    let end = last;
    const next = value[last + 1]?.toLowerCase();
    if (next && MAGNITUDE[next] !== undefined) {
      n *= MAGNITUDE[next];
      end = last + 1;
    }
    const after = value[end + 1]?.toLowerCase();
    if (d.type === "CARDINAL" && after && /^(days?|weeks?|months?|years?|hours?|people|employees|times)$/.test(after)) return;
    const words = d.value.toLowerCase().split(/\s+|(?<=[$€£])/);
    const currency =
      words.map((w) => CURRENCY[w]).find(Boolean) ??
      (after ? CURRENCY[after] : undefined) ??
      (before ? CURRENCY[before.toLowerCase()] : undefined);
    out.push({ value: n, ...(currency ? { currency } : {}), text: value.slice(first, end + 1).join(" ") });
  });
  return out;
}

/** A date or range the question states, as ISO days. */
export interface DateSpan {
  start: string;
  end?: string;
  text: string;
}

/**
 * Dates the text states (ISO, "December 21", "next Monday", "tomorrow", "from the 21st to the
 * 23rd"), by chrono-node, relative ones from `now`, future-leaning. Vague spans ("next week",
 * "in December") and durations ("for 2 days") are not dates: a tool that needs a day is given
 * none rather than a guess.
 */
export function dates(text: string, now: Date = new Date()): DateSpan[] {
  const out: DateSpan[] = [];
  for (const r of chrono.parse(text, now, { forwardDate: true })) {
    if (
      /^(for|in|within|after)?\s*(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten)\s+(working |business )?(days?|weeks?|months?|years?)$/i.test(
        r.text.trim(),
      )
    )
      continue;
    const day = (c: chrono.ParsedComponents) => c.isCertain("day") || c.isCertain("weekday");
    if (!day(r.start)) continue;
    // "next week", "the week after": a span, not a day.
    if (/\b(week|month|year|weekend)\b/i.test(r.text) && !/\d|\b(mon|tues|wednes|thurs|fri|satur|sun)day\b/i.test(r.text)) continue;
    const iso = (c: chrono.ParsedComponents) => {
      const d = c.date();
      return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    };
    out.push({ start: iso(r.start), ...(r.end && day(r.end) ? { end: iso(r.end) } : {}), text: r.text });
  }
  return out;
}

/** A schema's field or parameter name as the words a sentence says ("hireDate", "net_pay" → "hire date", "net pay"). */
export function fieldWords(field: string): string {
  return field
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .replace(/_/g, " ")
    .toLowerCase();
}

/** A name or value as written, to match literally inside a RegExp. */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
