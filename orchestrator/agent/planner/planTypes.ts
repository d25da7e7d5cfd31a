import type { Candidate as RouteCandidate } from "../router/classifier.ts";
import type { Entity } from "./model.ts";
import type { Attribute } from "./records.ts";

/** Where a step's argument comes from when an earlier step's result decides it. */
export interface Ref {
  step: string;
  path: string[];
  /** Of a list: the member with the latest (max) or earliest (min) value of this field. */
  pick?: { field: string; order: "max" | "min" };
}
export type Arg = { $ref: Ref } | string | number | boolean;

export interface Step {
  id: string;
  agent: string;
  tool: string;
  args: Record<string, Arg>;
  /** Steps whose results this one needs (the rest run in parallel). */
  after: string[];
  why: string;
  sideEffect: boolean;
}

/** Who or what a part of the question is about: a named entity, or one an earlier step finds. */
export type Subject = { type: string; label: string } & ({ entity: Entity } | { ref: Ref; list: boolean });

export interface Hop {
  label: string;
  subject: Subject;
}

/** How one part of the question is answered once the steps have run. */
export type Part =
  /** `fields`: paths in the result to the fields the clause asks for (a tool whose text is a raw record is answered with them). */
  | {
      kind: "result";
      clause: string;
      hops: Hop[];
      steps: string[];
      fields?: string[][];
      about?: string;
      /** Compare the one field across the steps (one per subject, `labels` in order): who has the most (max) or least (min). */
      compare?: { order: "max" | "min"; labels: string[] };
    }
  | { kind: "attribute"; clause: string; hops: Hop[]; step: string; attribute: Attribute; label: string }
  | { kind: "identity"; clause: string; hops: Hop[] }
  | { kind: "ask"; clause: string; step: string; agent: string }
  | { kind: "problem"; clause: string; hops: Hop[]; message: string; agent?: string };

/** What pronouns refer to: "it"/"its" the last thing answered about, "he"/"her"/"they" the last person-like subject (of the type the question named). */
export interface Focus {
  last?: Subject;
  personal?: Subject;
  /** Who "I", "me" and "my" are, when the message said so ("I am Ines Silva"). */
  me?: Subject & { entity: Entity };
}

/** What planning one clause gives: its part of the plan, or a question back (or no agent fits). */
export type ClauseOutcome =
  | { decision: "plan"; part: Part; focus?: Focus; candidates: RouteCandidate[] }
  | { decision: "ambiguous" | "none"; message: string; candidates: RouteCandidate[] };
