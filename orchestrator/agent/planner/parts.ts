import type { Candidate as RouteCandidate } from "../router/classifier.ts";
import type { MeshModel } from "./model.ts";
import type { Target } from "./targets.ts";
import type { Attribute } from "./records.ts";
import type { SpeechAct } from "./speechAct.ts";
import type { Builder } from "./builder.ts";
import type { Chain } from "./chains.ts";
import { fieldWords } from "./language.ts";
import type { Focus, Hop, Part } from "./planTypes.ts";

// The parts a clause's plan ends in, shared by the ways of planning it: a question back before
// acting, a clause handed to an agent's `ask`, a field of a record, what a tool still needs.

/**
 * A clause that reads as a question or an unclear request ("Can I book…?", "Close ticket HD-2005")
 * where the tool that fits would change something: ask, rather than act or guess.
 */
export function askBeforeActing(target: Target, act: SpeechAct): { decision: "ambiguous"; message: string; candidates: RouteCandidate[] } {
  const what = (target.tool.title ?? target.tool.name.replace(/_/g, " ")).toLowerCase();
  const verb = "verb" in act ? act.verb : what.split(" ")[0];
  return {
    decision: "ambiguous",
    message: `Do you want me to ${what} (${target.agent}.${target.tool.name})? I change something only when asked to do it, e.g. "Please ${verb} …"; nothing was changed. If you are asking about it, please ask it as a question.`,
    candidates: [{ agent: target.agent, score: 0, confidence: 0 }],
  };
}

/** A clause handed to one agent's `ask`, in the user's words. */
export function askAgent(
  b: Builder,
  clause: string,
  agent: string,
  candidates: RouteCandidate[] = [],
): { decision: "plan"; part: Part; candidates: RouteCandidate[] } {
  const step = b.call(agent, "ask", { question: clause }, `ask ${agent}`);
  return { decision: "plan", part: { kind: "ask", clause, step, agent }, candidates };
}

/** A clause answered by one field of a subject's record ("Rosa Moreno's department"). */
export function readAttribute(
  model: MeshModel,
  b: Builder,
  clause: string,
  chain: Chain,
  attribute: Attribute,
): { decision: "plan"; part: Part; focus: Focus; candidates: RouteCandidate[] } {
  const { hops, subject } = b.follow(chain);
  const step = b.call(
    attribute.agent,
    attribute.tool,
    { [attribute.param]: b.arg(subject) },
    `read ${subject.label}'s ${fieldWords(attribute.field)}`,
  );
  // A field that is itself a thing the mesh knows (a department): "it" in the next clause is that.
  const after = focusAfter(chain, hops);
  const valueFocus: Focus | undefined = model.types.includes(attribute.field)
    ? {
        ...after,
        last: {
          type: attribute.field,
          label: `${subject.label}'s ${fieldWords(attribute.field)}`,
          ref: { step, path: attribute.path },
          list: false,
        },
      }
    : undefined;
  return {
    decision: "plan",
    part: { kind: "attribute", clause, hops, step, attribute, label: subject.label },
    focus: valueFocus ?? after,
    candidates: [],
  };
}

/** What a tool still needs to be called, said with what each argument is. */
export function needs(target: Target, missing: { name: string; description?: string }[]): string {
  const what = missing.map((m) => `${m.name}${m.description ? ` (${m.description})` : ""}`).join(", ");
  return `To ${(target.tool.title ?? target.tool.name).toLowerCase()} (${target.agent}.${target.tool.name}) I need ${what}.`;
}

/** After a chain: "it" is where it ends; "he/she/they" the last subject of the type the chain started from. */
export function focusAfter(chain: Chain, hops: Hop[]): Focus {
  const subjects = [chain.subject, ...hops.map((h) => h.subject)];
  const personal = subjects.filter((s) => s.type === chain.subject.type && !("list" in s && s.list)).at(-1);
  return { last: subjects.at(-1)!, ...(personal ? { personal } : {}) };
}
