import type { MeshClient } from "../../src/client/meshClient.ts";
import { runWithMeshContext, type MeshContext, type Turn } from "../../src/context/meshContext.ts";
import { describeError, isMeshError } from "../../src/protocol/errors.ts";
import { silentLogger, type Logger } from "../../src/logger.ts";
import { currentPrincipal } from "../../src/http/principal.ts";
import type { Candidate } from "./router/classifier.ts";
import type { SessionStore } from "./session/sessionStore.ts";
import type { MeshModel } from "./planner/model.ts";
import { asksToAct, Planner, type Plan } from "./planner/plan.ts";
import { failuresOf, runPlan, usedBy, type AskFailure, type StepRun } from "./planner/run.ts";
import { LlmPlanner, type LlmCall, type LlmConfig, type LlmOutcome } from "./planner/llm.ts";
import { ModelSource } from "./modelSource.ts";
import { answerText, asEntity, contextForCall, type Exchange } from "./exchange.ts";
import { asCalls, CONFIRMATION, confirmMessage, idempotencyKey, literalArgs, runConfirmedCalls } from "./confirmation.ts";

export interface AskOptions {
  /** Continue this session (created when new). Only its owner may: another caller gets SessionRefused. */
  sessionId?: string;
  /**
   * Who is asking (principal.ts `ownerOf`): the owner of a session it starts, and the only
   * caller that may continue it. @default currentPrincipal() ("anonymous" for the CLI)
   */
  owner?: string;
  /** Skip classification and ask this agent. */
  agent?: string;
  /** @default 30000 */
  timeoutMs?: number;
  /** Run steps that change something (book leave, file an expense) without asking first. */
  confirm?: boolean;
}

/** What the plan did, step by step (`mesh ask --explain`). */
export interface Explanation {
  planner: "built-in" | "llm";
  steps: StepRun[];
  /** Parts of the question not answered, and why. */
  unanswered: string[];
}

export type AskResult =
  | {
      kind: "answer";
      answer: string;
      agent: string;
      instance: string;
      confidence: number | null;
      sources: string[];
      sessionId: string;
      /** False when the session could not be read or written (Consul unreachable): answered without history. */
      sessionSaved: boolean;
      traceId: string;
      candidates: Candidate[];
      /** agent.tool of every step that answered. */
      used: string[];
      explanation?: Explanation;
      /** True when everything asked was done: every step answered, every confirmed change made. */
      complete: boolean;
      /** What did not happen, and why (empty when complete). */
      failures: AskFailure[];
    }
  | {
      kind: "confirm";
      message: string;
      sessionId: string;
      /** The calls that would change something, with their arguments. */
      effects: { agent: string; tool: string; args: Record<string, unknown> }[];
      candidates: Candidate[];
    }
  | { kind: "ambiguous" | "none"; message: string; sessionId: string; candidates: Candidate[] };

/** What a planner's run gave, to record and return. */
interface Answered {
  answer: string;
  planner: Explanation["planner"];
  steps: StepRun[];
  used: string[];
  unanswered: string[];
}

/**
 * The orchestrator agent: plans a message as tool calls across the specialists (the
 * built-in planner reads the agents' tools and vocabularies), runs them through the mesh with
 * the MeshContext continued (independent steps in parallel), asks before anything that
 * changes data, and records the exchange and who it was about in the session (Consul KV), so
 * a follow-up ("and her manager?", "yes"), possibly through another orchestrator process,
 * continues the conversation — the follow-up of the caller that started it, no other's.
 * `agent` skips planning and asks that agent's `ask` tool.
 */
export class Orchestrator {
  private readonly mesh: MeshClient;
  private readonly sessions: SessionStore;
  private readonly planner = new Planner();
  private readonly logger: Logger;
  private readonly llm: LlmPlanner | undefined;
  private readonly models: ModelSource;

  /** `llm`: plan with this model when it answers; the built-in planner otherwise (and when it fails). */
  constructor(options: { mesh: MeshClient; sessions: SessionStore; logger?: Logger; llm?: LlmConfig }) {
    this.mesh = options.mesh;
    this.sessions = options.sessions;
    this.llm = options.llm ? new LlmPlanner(options.llm) : undefined;
    this.logger = (options.logger ?? silentLogger).child({ component: "orchestrator" });
    this.models = new ModelSource(this.mesh, this.logger);
  }

  /** Throws SessionRefused (a business error) for a session that is not the asker's. */
  async ask(message: string, options: AskOptions = {}): Promise<AskResult> {
    const x = await this.exchange(message, options);
    if (options.agent) return this.forward(x, options.agent);
    // "yes" to a question that asked for confirmation runs what it described: the model's
    // exact calls (LLM planner), or the question planned again (built-in, deterministic).
    const yes = CONFIRMATION.test(message.trim());
    const pendingCalls = asCalls(x.session?.facts["pendingCalls"]);
    if (yes && pendingCalls) return this.runConfirmed(x, pendingCalls);
    const pending = typeof x.session?.facts["pending"] === "string" ? x.session.facts["pending"] : undefined;
    const confirming = pending !== undefined && yes;
    const question = confirming ? pending : message;
    const model = await this.models.model(Date.now() + Math.min(x.timeoutMs, 5_000));
    // A question never changes anything: confirmation (--yes, confirm: true, "yes") applies only
    // to what a request asked for; a model is not even offered the tools that change state.
    const mayAct = asksToAct(question);
    if (this.llm && !confirming) {
      const answered = await this.askLlm(x, model, mayAct, options.confirm === true);
      if (answered) return answered;
    }
    return this.planAndRun(x, model, question, mayAct, options.confirm === true || confirming);
  }

  /** The message in its session; Consul KV down must not cost the answer: continue without history, and say so. */
  private async exchange(message: string, options: AskOptions): Promise<Exchange> {
    const sessionId = options.sessionId ?? this.sessions.newId();
    const owner = options.owner ?? currentPrincipal();
    let saved = true;
    const session = await this.sessions.load(sessionId, owner).catch((e: unknown) => {
      if (!isMeshError(e) || !e.retryable) throw e;
      saved = false;
      this.logger.warn({ sessionId, err: describeError(e) }, "cannot read the session; answering without its history");
      return undefined;
    });
    return { message, sessionId, owner, timeoutMs: options.timeoutMs ?? 30_000, session, saved };
  }

  /**
   * Plans the question with the built-in planner and runs it; a plan that would change
   * something is only described until `confirmed` (and never run for a question).
   */
  private async planAndRun(x: Exchange, model: MeshModel, question: string, mayAct: boolean, confirmed: boolean): Promise<AskResult> {
    const { sessionId } = x;
    const focus = asEntity(x.session?.facts["focus"]);
    const plan = this.planner.plan(model, question, focus ? { focus } : {});
    if (plan.effects.length > 0 && !mayAct) {
      // The planner never plans a change for a question; if it ever did, nothing runs.
      this.logger.error({ sessionId, question, effects: plan.effects }, "a plan for a question held a change; refused");
      return {
        kind: "none",
        message: `"${question}" reads as a question, and answering it would have changed something; nothing was changed. To make a change, ask for it (e.g. "Please book …").`,
        sessionId,
        candidates: plan.candidates,
      };
    }
    if (plan.decision !== "plan") {
      this.logger.info({ sessionId, kind: plan.decision, candidates: plan.candidates }, "not planned");
      return { kind: plan.decision, message: plan.message ?? "", sessionId, candidates: plan.candidates };
    }
    if (plan.effects.length > 0 && !confirmed) return this.askToConfirm(x, question, plan);
    return this.runBuiltIn(x, question, plan);
  }

  /** Describes what the plan would change, and keeps the question in the session for a "yes". */
  private async askToConfirm(x: Exchange, question: string, plan: Plan): Promise<AskResult> {
    const effects = plan.steps.filter((s) => s.sideEffect).map((s) => ({ agent: s.agent, tool: s.tool, args: literalArgs(s.args) }));
    const text = confirmMessage(effects);
    if (x.saved)
      await this.save(x.sessionId, x.owner, [{ role: "user", text: x.message, at: new Date().toISOString() }], {
        pending: question,
        pendingCalls: null,
      });
    return { kind: "confirm", message: text, sessionId: x.sessionId, effects, candidates: plan.candidates };
  }

  /** Runs a built-in plan through the mesh, each change with its idempotency key, and records who it ended on. */
  private async runBuiltIn(x: Exchange, question: string, plan: Plan): Promise<AskResult> {
    const primary = plan.primary ?? plan.steps.at(-1)?.agent ?? "orchestrator";
    const context = contextForCall(primary, x);
    const run = await runWithMeshContext(context, () =>
      runPlan(plan, async (step, args) => {
        const key = step.sideEffect ? idempotencyKey(x.sessionId, question, step.id, args) : undefined;
        const outcome = await this.mesh.call(step.agent, step.tool, args, { context, ...(key ? { idempotencyKey: key } : {}) });
        return outcome;
      }),
    );
    const named = plan.focus && "entity" in plan.focus ? plan.focus.entity : undefined;
    const focusAfter = run.focus ?? (named ? { type: named.type, id: named.id, name: named.name } : undefined);
    const { answer, steps, used, unanswered } = run;
    return this.answered(x, { answer, planner: "built-in", steps, used, unanswered }, context, {
      agent: primary,
      candidates: plan.candidates,
      facts: focusAfter ? { focus: focusAfter } : {},
    });
  }

  /** Plans with the model; undefined (after a log line) when the endpoint is absent or failing. */
  private async askLlm(x: Exchange, model: MeshModel, mayAct: boolean, confirm: boolean): Promise<AskResult | undefined> {
    const llm = this.llm!;
    const { message, sessionId } = x;
    const context = contextForCall("mesh", x);
    let outcome: LlmOutcome;
    try {
      outcome = await runWithMeshContext(context, () =>
        llm.answer(message, {
          model,
          history: x.session?.history ?? [],
          mayAct,
          confirm: mayAct && confirm,
          signal: AbortSignal.timeout(x.timeoutMs),
          call: (c) => {
            const key = c.sideEffect ? idempotencyKey(sessionId, message, c.tool, c.args) : undefined;
            return this.mesh.call(c.agent, c.tool, c.args, { context, ...(key ? { idempotencyKey: key } : {}) });
          },
        }),
      );
    } catch (e) {
      this.logger.warn(
        { sessionId, model: llm.model, err: describeError(e) },
        "the LLM planner failed; answering with the built-in planner",
      );
      return undefined;
    }
    const at = new Date().toISOString();
    if (outcome.kind === "confirm") {
      if (x.saved)
        await this.save(sessionId, x.owner, [{ role: "user", text: message, at }], { pendingCalls: outcome.effects, pending: null });
      return { kind: "confirm", message: confirmMessage(outcome.effects), sessionId, effects: outcome.effects, candidates: [] };
    }
    const { answer, steps, used } = outcome;
    return this.answered(x, { answer, planner: "llm", steps, used, unanswered: [] }, context);
  }

  /** Runs the calls a "yes" confirmed, exactly as they were shown. */
  private async runConfirmed(x: Exchange, calls: LlmCall[]): Promise<AskResult> {
    const context = contextForCall("mesh", x);
    const { steps, texts } = await runConfirmedCalls(this.mesh, calls, x.sessionId, context);
    const used = usedBy(steps);
    const answer = `${texts.join("\n")}${used.length ? `\n\n— ${used.join(", ")}` : ""}`;
    return this.answered(x, { answer, planner: "llm", steps, used, unanswered: [] }, context);
  }

  /** Records an answer in the session and shapes the result. */
  private async answered(
    x: Exchange,
    a: Answered,
    context: MeshContext,
    extra: { agent?: string; candidates?: Candidate[]; facts?: Record<string, unknown> } = {},
  ): Promise<AskResult> {
    const { answer, planner, steps, used, unanswered } = a;
    const { sessionId } = x;
    // The agent that answered: the one the plan names, else the last that answered.
    const last = [...steps].reverse().find((s) => s.status === "ok" && (!extra.agent || s.agent === extra.agent));
    const agent = extra.agent ?? last?.agent ?? "orchestrator";
    const sessionSaved = x.saved && (await this.saveExchange(x, answer, agent, { pending: null, pendingCalls: null, ...extra.facts }));
    this.logger.info({ sessionId, planner, agents: used, traceId: context.traceId }, "answered");
    const failures = failuresOf(steps, unanswered).map((f) => this.models.explain(f));
    return {
      kind: "answer",
      answer,
      agent,
      instance: last?.instance ?? "",
      confidence: null,
      sources: used,
      sessionId,
      sessionSaved,
      traceId: context.traceId,
      candidates: extra.candidates ?? [],
      used,
      explanation: { planner, steps, unanswered },
      complete: failures.length === 0,
      failures,
    };
  }

  /** Records a question and its answer (and who answered) in the session. */
  private saveExchange(x: Exchange, answer: string, agent: string, facts: Record<string, unknown>): Promise<boolean> {
    const at = new Date().toISOString();
    return this.save(
      x.sessionId,
      x.owner,
      [
        { role: "user", text: x.message, at },
        { role: "agent", text: answer, agent, at },
      ],
      { lastAgent: agent, ...facts },
    );
  }

  private async save(sessionId: string, owner: string, turns: Turn[], facts: Record<string, unknown>): Promise<boolean> {
    return this.sessions.record(sessionId, owner, turns, facts).then(
      () => true,
      (e: unknown) => {
        if (!isMeshError(e) || !e.retryable) throw e;
        this.logger.warn({ sessionId, err: describeError(e) }, "cannot save the session");
        return false;
      },
    );
  }

  /** Asks one named agent's `ask` tool, as it is (`--agent`). */
  private async forward(x: Exchange, agent: string): Promise<AskResult> {
    const { message, sessionId } = x;
    const context = contextForCall(agent, x);
    const { result, instance } = await this.mesh.call(agent, "ask", { question: message }, { context });
    const answer = answerText(result);
    const sources = ((result.structuredContent as { sources?: unknown } | undefined)?.sources as string[] | undefined) ?? [];
    const sessionSaved = x.saved && (await this.saveExchange(x, answer, agent, {}));
    this.logger.info({ sessionId, agent, instance, traceId: context.traceId }, "answered");
    const failures: AskFailure[] = result.isError ? [{ kind: "business", agent, tool: "ask", changes: false, message: answer }] : [];
    return {
      kind: "answer",
      answer,
      agent,
      instance,
      confidence: null,
      sources,
      sessionId,
      sessionSaved,
      traceId: context.traceId,
      candidates: [],
      used: [`${agent}.ask`],
      complete: failures.length === 0,
      failures,
    };
  }
}
