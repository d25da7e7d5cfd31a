import type { Chain } from "./chains.ts";
import { fieldWords } from "./language.ts";
import type { Arg, Hop, Ref, Step, Subject } from "./planTypes.ts";

/** Builds steps, sharing one call between parts that need the same thing. */
export class Builder {
  private readonly steps: Step[];
  /** "Today", for relative dates. */
  readonly now: Date;
  /** Statements of the message beside its request ("I need a new charger"): what a free-text field says. */
  readonly context: string[] = [];
  constructor(steps: Step[], now: Date) {
    this.steps = steps;
    this.now = now;
  }

  /** A step calling `agent`'s `tool` (the same call already planned is shared); returns its id. */
  call(agent: string, tool: string, args: Record<string, Arg>, why: string, sideEffect = false): string {
    const key = JSON.stringify([agent, tool, args]);
    // The same call twice in one plan is one call; for a change too (one message books once).
    const same = this.steps.find((s) => JSON.stringify([s.agent, s.tool, s.args]) === key);
    if (same) return same.id;
    const id = `s${this.steps.length + 1}`;
    const after = [...new Set(Object.values(args).flatMap((a) => (typeof a === "object" ? [a.$ref.step] : [])))];
    this.steps.push({ id, agent, tool, args, after, why, sideEffect });
    return id;
  }

  /** How a step takes a subject: a named entity's id, or a reference to the step that finds it. */
  arg(subject: Subject): Arg {
    if ("entity" in subject) return subject.entity.id;
    return { $ref: subject.ref };
  }

  /** Adds the steps that follow a chain's relations; returns the hops and where it ends. */
  follow(chain: Chain): { hops: Hop[]; subject: Subject } {
    let subject = chain.subject;
    const hops: Hop[] = [];
    for (const { relation, pick } of chain.relations) {
      const step = this.call(
        relation.agent,
        relation.tool,
        { [relation.param]: this.arg(subject) },
        `find ${subject.label}'s ${relation.name}`,
      );
      const field = relation.dateFields[0];
      let ref: Ref = { step, path: relation.path, ...(pick && field ? { pick: { field, order: pick } } : {}) };
      // A link that ends in an id: read that thing's record, to name it and go on from it.
      if (relation.record) {
        const r = relation.record;
        const read = this.call(r.agent, r.tool, { [r.param]: { $ref: ref } }, `read the ${r.type} ${subject.label}'s ${relation.name} is`);
        ref = { step: read, path: [r.path[0]!] };
      }
      const label = `${subject.label}'s ${pick ? `${pick === "max" ? "newest" : "longest-serving"} ${fieldWords(relation.label).replace(/s$/, "")}` : fieldWords(relation.label)}`;
      subject = { type: relation.to, label, ref, list: relation.list && !pick };
      hops.push({ label, subject });
    }
    return { hops, subject };
  }
}
