import type { Target } from "./targets.ts";
import type { Builder } from "./builder.ts";
import type { Arg, Subject } from "./planTypes.ts";
import { expand } from "./thesaurus.ts";
import { amounts, dates, escapeRegExp } from "./language.ts";

// A tool's arguments from the question: the things it names for the parameters that take one,
// and for the others what the clause states (an enum value, a date, an amount, an id of the
// parameter's shape, the words of a free-text field).

const WORD_NUMBERS: Record<string, number> = {
  a: 1,
  an: 1,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
};
const DURATION = /\b(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten) (?:working |business |full )?days?\b/i;

type Property = Target["properties"][string];

/** What the clause states that a parameter may take: its dates, a duration, its amounts. */
interface Stated {
  /** The clause with its thesaurus words, lower case, "_" as a space (enum values are looked for in it). */
  expanded: string;
  start: string | undefined;
  end: string | undefined;
  /** A duration, in days ("for two days"). */
  days: number | undefined;
  /** The amounts, in order; each one a parameter takes is gone for the next. */
  numbers: number[];
}

/** Fills a tool's arguments from the question; says which required ones it cannot find. */
export function fill(
  target: Target,
  clause: string,
  /** Who the call is about (none: a tool that needs no one in particular). */
  subject: Subject | undefined,
  others: Subject[],
  b: Builder,
): { args: Record<string, Arg> } | { missing: { name: string; description?: string }[] } {
  const args: Record<string, Arg> = {};
  const said = stated(clause, b.now);
  let subjectUsed = false;
  const free: string[] = [];
  for (const [name, s] of Object.entries(target.properties)) {
    const ep = target.entityParams.find((p) => p.param === name);
    if (ep) {
      // The subject for the first parameter of its type; another thing named for the rest.
      const takesSubject: boolean = subject !== undefined && !subjectUsed && ep.type === subject.type;
      const who = takesSubject ? subject : others.find((o) => o.type === ep.type);
      if (who) args[name] = b.arg(who);
      subjectUsed ||= takesSubject;
      continue;
    }
    const value = statedValue(target, name, s, clause, said);
    if (value.value !== undefined) args[name] = value.value;
    if (value.settled) continue;
    if (s.type === "string" && target.required.includes(name)) {
      if (name === target.search)
        args[name] = subject ? ("entity" in subject ? subject.entity.name : b.arg(subject)) : clause.replace(/[?!.]+$/, "");
      else if (!s.pattern && !("format" in s)) free.push(name);
    }
  }
  // A required free-text parameter, whatever its name (description, summary, reason, note…): the
  // question's own words for it ("…: the screen flickers", "…because the VPN drops").
  if (free.length === 1) args[free[0]!] = freeText(clause, b.context);
  const missing = target.required
    .filter((r) => args[r] === undefined)
    .map((r) => ({ name: r, description: target.properties[r]?.description }));
  return missing.length
    ? { missing: missing.map((m) => (m.description ? { name: m.name, description: m.description } : { name: m.name })) }
    : { args };
}

/**
 * Dates by chrono-node ("2026-12-21", "next Monday", "December 21 to 24"); amounts by wink-nlp
 * ("1,500 USD", "$2k"), once dates, durations and ids are set aside.
 */
function stated(clause: string, now: Date): Stated {
  const expanded = expand(clause).toLowerCase().replace(/_/g, " ");
  const spans = dates(clause, now);
  const d = DURATION.exec(clause);
  const days = d ? (WORD_NUMBERS[d[1]!.toLowerCase()] ?? Number(d[1])) : undefined;
  let plain = clause.replace(DURATION, " ").replace(/\b[A-Z]+-?\d{3,}\b/g, " ");
  for (const s of spans) plain = plain.replace(s.text, " ");
  const numbers = amounts(plain).map((a) => a.value);
  return { expanded, start: spans[0]?.start, end: spans[0]?.end ?? spans[1]?.start, days, numbers };
}

/**
 * The value the clause states for a parameter that takes no entity, if any; `settled`: a
 * parameter of that kind (an enum, a date) is not filled any other way, found or not.
 */
function statedValue(
  target: Target,
  name: string,
  s: Property,
  clause: string,
  said: Stated,
): { value: Arg | undefined; settled: boolean } {
  if (s.enum) {
    // Enum values as words ("in_progress" is "in progress"), whether the parameter is required or a filter.
    const hit = s.enum.find(
      (v) => typeof v === "string" && new RegExp(`\\b${escapeRegExp(v.toLowerCase().replace(/_/g, " "))}`).test(said.expanded),
    );
    return { value: hit as string | undefined, settled: true };
  }
  if (/date/i.test(name) && (s.type === "string" || s.pattern)) return { value: dateValue(name, said), settled: true };
  if ((s.type === "number" || s.type === "integer") && target.required.includes(name) && said.numbers.length > 0) {
    return { value: said.numbers.shift()!, settled: true };
  }
  if (s.type === "string" && s.pattern) {
    // A value whose shape the schema gives (a month "2026-12", a ticket "HD-2001"): the question's word of that shape.
    const hit = wordOfShape(s.pattern, clause);
    if (hit) return { value: hit, settled: true };
  }
  return { value: undefined, settled: false };
}

/** A date parameter: a start the first date said, an end the range's end (or the duration's last working day). */
function dateValue(name: string, said: Stated): string | undefined {
  if (/^(start|from|first)/i.test(name) && said.start) return said.start;
  if (/^(end|to|until|last)/i.test(name)) {
    if (said.end) return said.end;
    return said.start ? addWorkingDays(said.start, (said.days ?? 1) - 1) : undefined;
  }
  return said.start ? said.start : undefined;
}

/** The clause's word that a parameter's pattern accepts (none for a pattern that is not a valid RegExp). */
function wordOfShape(pattern: string, clause: string): string | undefined {
  let re: RegExp | undefined;
  try {
    re = new RegExp(pattern);
  } catch {
    re = undefined;
  }
  return re ? clause.split(/[\s,;?!]+/).find((w) => re.test(w)) : undefined;
}

/** What a free-text field says: the words after a colon or a "because", else the whole clause. */
function freeText(clause: string, context: readonly string[] = []): string {
  const text = clause.trim().replace(/[?!.]+$/, "");
  const said = /:\s*(.{3,})$/.exec(text)?.[1] ?? /\b(?:because|since|saying|as)\s+(.{3,})$/i.exec(text)?.[1];
  return (said ?? (context.length ? context.join(". ") : text)).trim().slice(0, 300);
}

/** The date `n` working days (Monday-Friday) after `iso`. */
export function addWorkingDays(iso: string, n: number): string {
  const d = new Date(`${iso}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return iso;
  let left = Math.max(0, n);
  while (left > 0) {
    d.setUTCDate(d.getUTCDate() + 1);
    if (d.getUTCDay() !== 0 && d.getUTCDay() !== 6) left--;
  }
  return d.toISOString().slice(0, 10);
}
