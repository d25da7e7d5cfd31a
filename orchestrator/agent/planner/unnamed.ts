import { idPattern, type Candidate, type MeshModel } from "./model.ts";
import type { Target } from "./targets.ts";
import type { Builder } from "./builder.ts";
import { fill } from "./arguments.ts";
import { askAgent, askBeforeActing, needs } from "./parts.ts";
import { preferAsked, resultFields } from "./toolFit.ts";
import type { ClauseReading } from "./reading.ts";
import type { ClauseOutcome } from "./planTypes.ts";

// Clauses that name nothing the mesh knows: a tool that takes an id the clause states, a tool
// that needs no one in particular and fits clearly, a document its words point to, or the one
// agent whose tools fit best.

/** A tool this relevant, twice the next, answers a question that names no one. */
export const STRONG_TOOL_SCORE = 5;
/** A document's name this relevant to a question's words sends it to the document's agent. */
export const MIN_WORD_SCORE = 1.5;

type Ranked = { candidate: Candidate; score: number };

/** Plans a clause that names nothing, when a tool, a document or one agent's tools clearly fit. */
export function planUnnamed(model: MeshModel, b: Builder, r: ClauseReading): ClauseOutcome | undefined {
  const byId = byStatedId(model, b, r);
  if (byId) return byId;
  const ranked = model.rank(r.query, undefined, false, r.mayChange);
  const top = preferAsked(ranked, r.act);
  return strongTool(b, r, ranked, top) ?? byDocument(model, b, r) ?? oneAgentNear(model, b, r, ranked, top);
}

/** An id whose shape a tool's parameter gives ("ticket HD-2003"): the tool that fits best of those that take it. */
function byStatedId(model: MeshModel, b: Builder, r: ClauseReading): ClauseOutcome | undefined {
  const byId = takesStatedId(model, r.clause);
  if (byId.length === 0) return undefined;
  const fits = model
    .rank(r.query, undefined, false, (t) => r.mayChange(t) || r.act.kind === "unclear")
    .filter((x) => x.candidate.kind === "tool" && byId.includes(x.candidate.target));
  const reads = byId.filter((t) => !t.sideEffect);
  const target = fits[0]?.candidate.kind === "tool" ? fits[0].candidate.target : reads.length === 1 ? reads[0] : undefined;
  return target ? callWithoutSubject(b, r, target, true) : undefined;
}

/**
 * Nothing named, but a tool that needs no one in particular fits clearly ("run payroll for
 * 2026-12"): it is the answer, its arguments from the question (or asked for).
 */
function strongTool(b: Builder, r: ClauseReading, ranked: readonly Ranked[], top: Ranked | undefined): ClauseOutcome | undefined {
  const second = ranked.find((x) => x !== top);
  if (
    top &&
    top.candidate.kind === "tool" &&
    top.candidate.target.entityParams.length === 0 &&
    top.score >= STRONG_TOOL_SCORE &&
    (!second || top.score >= second.score * 2)
  ) {
    return callWithoutSubject(b, r, top.candidate.target, false);
  }
  return undefined;
}

/**
 * One call of a tool about no one in particular; `statedId`: the step is named by the id the
 * clause states for it. What it still needs is said (asking before a change comes first).
 */
function callWithoutSubject(b: Builder, r: ClauseReading, target: Target, statedId: boolean): ClauseOutcome {
  const { clause } = r;
  if (target.sideEffect && r.act.kind !== "request") return askBeforeActing(target, r.act);
  const filled = fill(target, clause, undefined, [], b);
  if (!("args" in filled)) {
    return {
      decision: "plan",
      part: { kind: "problem", clause, hops: [], agent: target.agent, message: needs(target, filled.missing) },
      candidates: [],
    };
  }
  const id = statedId
    ? (Object.values(filled.args).find((v) => typeof v === "string" && byIdWord(v, clause)) as string | undefined)
    : undefined;
  const step = b.call(
    target.agent,
    target.tool.name,
    filled.args,
    `${(target.tool.title ?? target.tool.name).toLowerCase()}${id ? ` ${id}` : ""}`,
    target.sideEffect,
  );
  return {
    decision: "plan",
    part: { kind: "result", clause, hops: [], steps: [step], ...resultFields(target, r.content, id) },
    candidates: [],
  };
}

/**
 * A document (or another thing one tool reads) whose name the question's words point to:
 * its agent answers ("where are my tax forms?" → the "Tax forms and certificates" document).
 */
function byDocument(model: MeshModel, b: Builder, r: ClauseReading): ClauseOutcome | undefined {
  const routable = model.routable();
  const [doc, next] = model.findByWords(r.content.join(" "));
  const owner = doc?.entity.agents.find((a) => routable.some((x) => x.name === a));
  if (doc && owner && doc.score >= MIN_WORD_SCORE && (!next || doc.score >= next.score * 1.2)) return askAgent(b, r.clause, owner);
  return undefined;
}

/**
 * The tools that fit best, several of them, all belong to one agent ("the leave policy for
 * sick days": hr's leave tools): that agent answers, in its own words. (One tool alone is
 * too thin: "report a phishing email" is not about direct reports.)
 */
function oneAgentNear(
  model: MeshModel,
  b: Builder,
  r: ClauseReading,
  ranked: readonly Ranked[],
  top: Ranked | undefined,
): ClauseOutcome | undefined {
  const near = top ? ranked.filter((x) => x.score >= top.score / 2) : [];
  const nearAgents = new Set(near.map((x) => (x.candidate.kind === "tool" ? x.candidate.target.agent : x.candidate.attribute.agent)));
  const only = nearAgents.size === 1 ? [...nearAgents][0]! : undefined;
  if (top && top.score >= STRONG_TOOL_SCORE && near.length >= 2 && only && model.routable().some((x) => x.name === only)) {
    return askAgent(b, r.clause, only);
  }
  return undefined;
}

/** Whether a value is one of the clause's words, as written. */
function byIdWord(v: string, clause: string): boolean {
  return clause.split(/[\s,;?!.:]+/).includes(v);
}

/** Tools with a required parameter whose id pattern a word of the clause has. */
function takesStatedId(model: MeshModel, clause: string): Target[] {
  const words = clause
    .split(/[\s,;?!:]+/)
    .map((w) => w.replace(/[.'’]+$/, ""))
    .filter((w) => /\d/.test(w) && /[A-Za-z]/.test(w));
  if (words.length === 0) return [];
  return model.targets.filter((t) =>
    t.required.some((x) => {
      const re = idPattern(t.properties[x]);
      return re !== undefined && words.some((w) => re.test(w));
    }),
  );
}
