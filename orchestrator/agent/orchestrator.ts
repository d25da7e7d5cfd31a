import type { CallToolResult } from "@modelcontextprotocol/client";
import { ProtocolError } from "@modelcontextprotocol/client";
import type { MeshClient } from "../../src/client/meshClient.ts";
import { resultText } from "../../src/protocol/results.ts";
import {
  childContext,
  currentMeshContext,
  rootContext,
  runWithMeshContext,
  type MeshContext,
  type Turn,
} from "../../src/context/meshContext.ts";
import { describeError, isMeshError } from "../../src/protocol/errors.ts";
import { silentLogger, type Logger } from "../../src/logger.ts";
import { currentPrincipal } from "../../src/http/principal.ts";
import type { Candidate } from "./router/classifier.ts";
import type { SessionStore } from "./session/sessionStore.ts";
import { createHash } from "node:crypto";
import { vocabularyUri, type Vocabulary, type VocabularyEntry } from "../../src/agent/vocabulary.ts";
import { MeshModel, type Entity } from "./planner/model.ts";
import { asksToAct, Planner, type Plan } from "./planner/plan.ts";
import { failuresOf, runPlan, type AskFailure, type StepRun } from "./planner/run.ts";
import { LlmPlanner, type LlmCall, type LlmConfig, type LlmOutcome } from "./planner/llm.ts";

/** A reply that confirms the side effects the previous answer asked about. */
export const CONFIRMATION = /^(y|yes|yes please|confirm|confirmed|ok|okay|go ahead|do it|book it|file it|submit it|please do|sure)[.!]*$/i;

/** How long a published vocabulary is reused before it is read again. @default 60000 */
export const VOCABULARY_TTL_MS = 60_000;

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
  private readonly vocabularies = new Map<string, { at: number; entries: readonly VocabularyEntry[] }>();
  private readonly llm: LlmPlanner | undefined;
  private lastModel: { inputs: unknown[]; model: MeshModel } | undefined;
  /** Agents whose vocabulary could not be read for the latest model, with why. */
  private readonly unreadVocabularies = new Map<string, string>();

  /** `llm`: plan with this model when it answers; the built-in planner otherwise (and when it fails). */
  constructor(options: { mesh: MeshClient; sessions: SessionStore; logger?: Logger; llm?: LlmConfig }) {
    this.mesh = options.mesh;
    this.sessions = options.sessions;
    this.llm = options.llm ? new LlmPlanner(options.llm) : undefined;
    this.logger = (options.logger ?? silentLogger).child({ component: "orchestrator" });
  }

  /** Throws SessionRefused (a business error) for a session that is not the asker's. */
  async ask(message: string, options: AskOptions = {}): Promise<AskResult> {
    const sessionId = options.sessionId ?? this.sessions.newId();
    const owner = options.owner ?? currentPrincipal();
    // Consul KV down must not cost the answer: continue without history, and say so.
    let sessionSaved = true;
    const session = await this.sessions.load(sessionId, owner).catch((e: unknown) => {
      if (!isMeshError(e) || !e.retryable) throw e;
      sessionSaved = false;
      this.logger.warn({ sessionId, err: describeError(e) }, "cannot read the session; answering without its history");
      return undefined;
    });
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (options.agent) return this.forward(message, options.agent, sessionId, owner, timeoutMs, session, sessionSaved);

    // "yes" to a question that asked for confirmation runs what it described: the model's
    // exact calls (LLM planner), or the question planned again (built-in, deterministic).
    const yes = CONFIRMATION.test(message.trim());
    const pendingCalls = asCalls(session?.facts["pendingCalls"]);
    if (yes && pendingCalls) return this.runConfirmed(message, pendingCalls, sessionId, owner, timeoutMs, session, sessionSaved);
    const pending = typeof session?.facts["pending"] === "string" ? session.facts["pending"] : undefined;
    const confirming = pending !== undefined && yes;
    const question = confirming ? pending : message;
    const model = await this.model(Date.now() + Math.min(timeoutMs, 5_000));
    // A question never changes anything: confirmation (--yes, confirm: true, "yes") applies only
    // to what a request asked for; a model is not even offered the tools that change state.
    const mayAct = asksToAct(question);
    if (this.llm && !confirming) {
      const answered = await this.askLlm(
        message,
        model,
        sessionId,
        owner,
        timeoutMs,
        session,
        sessionSaved,
        mayAct,
        options.confirm === true,
      );
      if (answered) return answered;
    }
    const focus = asEntity(session?.facts["focus"]);
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
    if (plan.effects.length > 0 && !(options.confirm || confirming)) {
      const effects = plan.steps.filter((s) => s.sideEffect).map((s) => ({ agent: s.agent, tool: s.tool, args: literalArgs(s.args) }));
      const text = confirmMessage(effects);
      if (sessionSaved)
        await this.save(sessionId, owner, [{ role: "user", text: message, at: new Date().toISOString() }], {
          pending: question,
          pendingCalls: null,
        });
      return { kind: "confirm", message: text, sessionId, effects, candidates: plan.candidates };
    }
    const primary = plan.primary ?? plan.steps.at(-1)?.agent ?? "orchestrator";
    const context = contextForCall(primary, sessionId, timeoutMs, session);
    const run = await runWithMeshContext(context, () =>
      runPlan(plan, async (step, args) => {
        const key = step.sideEffect ? idempotencyKey(sessionId, question, step.id, args) : undefined;
        const outcome = await this.mesh.call(step.agent, step.tool, args, { context, ...(key ? { idempotencyKey: key } : {}) });
        return outcome;
      }),
    );
    const named = plan.focus && "entity" in plan.focus ? plan.focus.entity : undefined;
    const focusAfter = run.focus ?? (named ? { type: named.type, id: named.id, name: named.name } : undefined);
    return this.answered(message, run.answer, "built-in", run.steps, run.used, run.unanswered, sessionId, owner, context, sessionSaved, {
      agent: primary,
      candidates: plan.candidates,
      facts: focusAfter ? { focus: focusAfter } : {},
    });
  }

  /** Plans with the model; undefined (after a log line) when the endpoint is absent or failing. */
  private async askLlm(
    message: string,
    model: MeshModel,
    sessionId: string,
    owner: string,
    timeoutMs: number,
    session: { facts: Record<string, unknown>; history: readonly Turn[] } | undefined,
    saved: boolean,
    mayAct: boolean,
    confirm: boolean,
  ): Promise<AskResult | undefined> {
    const llm = this.llm!;
    const context = contextForCall("mesh", sessionId, timeoutMs, session);
    let outcome: LlmOutcome;
    try {
      outcome = await runWithMeshContext(context, () =>
        llm.answer(message, {
          model,
          history: session?.history ?? [],
          mayAct,
          confirm: mayAct && confirm,
          signal: AbortSignal.timeout(timeoutMs),
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
      if (saved) await this.save(sessionId, owner, [{ role: "user", text: message, at }], { pendingCalls: outcome.effects, pending: null });
      return { kind: "confirm", message: confirmMessage(outcome.effects), sessionId, effects: outcome.effects, candidates: [] };
    }
    return this.answered(message, outcome.answer, "llm", outcome.steps, outcome.used, [], sessionId, owner, context, saved);
  }

  /** Runs the calls a "yes" confirmed, exactly as they were shown. */
  private async runConfirmed(
    message: string,
    calls: LlmCall[],
    sessionId: string,
    owner: string,
    timeoutMs: number,
    session: { facts: Record<string, unknown>; history: readonly Turn[] } | undefined,
    saved: boolean,
  ): Promise<AskResult> {
    const context = contextForCall("mesh", sessionId, timeoutMs, session);
    const steps: StepRun[] = [];
    const texts: string[] = [];
    for (const [i, c] of calls.entries()) {
      const run: StepRun = {
        id: `c${i + 1}`,
        agent: c.agent,
        tool: c.tool,
        args: c.args,
        why: "confirmed by the user",
        status: "error",
        changes: true,
      };
      steps.push(run);
      const t0 = performance.now();
      try {
        const { result, instance } = await this.mesh.call(c.agent, c.tool, c.args, {
          context,
          idempotencyKey: idempotencyKey(sessionId, JSON.stringify(calls), c.tool, c.args),
        });
        run.instance = instance;
        run.status = result.isError ? "error" : "ok";
        if (result.isError) {
          run.failure = "business";
          run.error = resultText(result);
        }
        texts.push(resultText(result));
      } catch (e) {
        run.failure = "mesh";
        run.error = describeError(e);
        texts.push(`${c.agent}.${c.tool} failed: ${run.error}`);
      } finally {
        run.ms = Math.round((performance.now() - t0) * 10) / 10;
      }
    }
    const used = [...new Set(steps.filter((s) => s.status === "ok").map((s) => `${s.agent}.${s.tool}`))];
    const answer = `${texts.join("\n")}${used.length ? `\n\n— ${used.join(", ")}` : ""}`;
    return this.answered(message, answer, "llm", steps, used, [], sessionId, owner, context, saved);
  }

  /** Records an answer in the session and shapes the result. */
  private async answered(
    message: string,
    answer: string,
    planner: Explanation["planner"],
    steps: StepRun[],
    used: string[],
    unanswered: string[],
    sessionId: string,
    owner: string,
    context: MeshContext,
    saved: boolean,
    extra: { agent?: string; candidates?: Candidate[]; facts?: Record<string, unknown> } = {},
  ): Promise<AskResult> {
    // The agent that answered: the one the plan names, else the last that answered.
    const last = [...steps].reverse().find((s) => s.status === "ok" && (!extra.agent || s.agent === extra.agent));
    const agent = extra.agent ?? last?.agent ?? "orchestrator";
    const sessionSaved =
      saved && (await this.saveExchange(sessionId, owner, message, answer, agent, { pending: null, pendingCalls: null, ...extra.facts }));
    this.logger.info({ sessionId, planner, agents: used, traceId: context.traceId }, "answered");
    const failures = failuresOf(steps, unanswered).map((f) => this.explainUnanswered(f));
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

  /**
   * A part left unanswered while an agent could not be read (its vocabulary, so the names it
   * knows) or had no usable instance is a failure of the mesh, not of the question: said so.
   */
  private explainUnanswered(f: AskFailure): AskFailure {
    if (f.kind !== "unanswered") return f;
    const down = this.mesh.catalog
      .agents()
      .filter((a) => a.instances.length === 0)
      .map((a) => `${a.name} has no usable instance`);
    const unread = [...this.unreadVocabularies].map(([agent, err]) => `${agent} did not answer (${err})`);
    const why = [...down, ...unread];
    if (why.length === 0) return f;
    const message = `${f.message} But ${why.join(" and ")}, so what only it knows could not be looked up; ask again once it is back (see "mesh agents").`;
    return { ...f, kind: "mesh", message };
  }

  /** The mesh as the planner reads it: healthy agents, their tools and vocabularies. */
  async model(deadline: number): Promise<MeshModel> {
    const agents = this.mesh.catalog.agents().filter((a) => a.instances.length > 0);
    const vocabularies = await Promise.all(agents.map((a) => this.vocabulary(a.name, deadline)));
    // The same agents, tool lists and vocabularies (the catalog and the cache keep their arrays): the same model.
    const inputs = agents.flatMap((a, i) => [a.name, a.description, a.tools, vocabularies[i]]);
    if (this.lastModel && this.lastModel.inputs.length === inputs.length && this.lastModel.inputs.every((x, i) => x === inputs[i]))
      return this.lastModel.model;
    const model = new MeshModel(
      agents.map((a, i) => ({
        name: a.name,
        ...(a.description ? { description: a.description } : {}),
        tags: a.tags,
        tools: a.tools,
        vocabulary: vocabularies[i]!,
      })),
    );
    this.lastModel = { inputs, model };
    return model;
  }

  private async vocabulary(agent: string, deadline: number): Promise<readonly VocabularyEntry[]> {
    const cached = this.vocabularies.get(agent);
    if (cached && Date.now() - cached.at < VOCABULARY_TTL_MS) return cached.entries;
    const signal = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    try {
      const read = await this.mesh.withAgent(agent, (c) => c.readResource({ uri: vocabularyUri(agent) }, { signal }));
      const text = (read.contents[0] as { text?: unknown } | undefined)?.text;
      const parsed = typeof text === "string" ? (JSON.parse(text) as Vocabulary) : undefined;
      const entries = Array.isArray(parsed?.entries)
        ? parsed.entries.filter((e) => e && typeof e.type === "string" && typeof e.id === "string" && typeof e.name === "string")
        : [];
      this.vocabularies.set(agent, { at: Date.now(), entries });
      this.unreadVocabularies.delete(agent);
      return entries;
    } catch (e) {
      // An agent that publishes none (most MCP servers) is planned from its tools alone.
      this.logger.debug({ agent, err: describeError(e) }, "no vocabulary");
      // An agent that publishes none answers "not found"; one that did not answer is a mesh failure.
      if (!cached && !answeredWithout(e)) this.unreadVocabularies.set(agent, describeError(e));
      this.vocabularies.set(agent, { at: Date.now(), entries: cached?.entries ?? [] });
      return cached?.entries ?? [];
    }
  }

  /** Records a question and its answer (and who answered) in the session. */
  private saveExchange(
    sessionId: string,
    owner: string,
    message: string,
    answer: string,
    agent: string,
    facts: Record<string, unknown>,
  ): Promise<boolean> {
    const at = new Date().toISOString();
    return this.save(
      sessionId,
      owner,
      [
        { role: "user", text: message, at },
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
  private async forward(
    message: string,
    agent: string,
    sessionId: string,
    owner: string,
    timeoutMs: number,
    session: { facts: Record<string, unknown>; history: readonly Turn[] } | undefined,
    saved: boolean,
  ): Promise<AskResult> {
    const context = contextForCall(agent, sessionId, timeoutMs, session);
    const { result, instance } = await this.mesh.call(agent, "ask", { question: message }, { context });
    const answer = answerText(result);
    const sources = ((result.structuredContent as { sources?: unknown } | undefined)?.sources as string[] | undefined) ?? [];
    const sessionSaved = saved && (await this.saveExchange(sessionId, owner, message, answer, agent, {}));
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

/** What a plan would change, and how to let it. */
function confirmMessage(effects: readonly LlmCall[]): string {
  return `This would change something: ${effects
    .map((e) => `${e.agent}.${e.tool} ${JSON.stringify(e.args)}`)
    .join("; ")}. Reply "yes" in this session to go ahead (or ask again with confirmation: mesh ask --yes).`;
}

function asCalls(v: unknown): LlmCall[] | undefined {
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const ok = v.every(
    (c) => c && typeof c === "object" && typeof c.agent === "string" && typeof c.tool === "string" && c.args && typeof c.args === "object",
  );
  return ok ? (v as LlmCall[]) : undefined;
}

/** Arguments known before anything runs (references to earlier steps shown as such). */
function literalArgs(args: Plan["steps"][number]["args"]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).map(([k, v]) => [k, typeof v === "object" ? `<from ${v.$ref.step}>` : v]));
}

/** One key per intended effect: a repeated "yes" or a failover does not book twice. */
function idempotencyKey(sessionId: string, question: string, step: string, args: Record<string, unknown>): string {
  return `ask-${createHash("sha256")
    .update(JSON.stringify([sessionId, question, step, args]))
    .digest("hex")
    .slice(0, 40)}`;
}

function asEntity(v: unknown): Entity | undefined {
  if (!v || typeof v !== "object") return undefined;
  const o = v as Record<string, unknown>;
  return typeof o["type"] === "string" && typeof o["id"] === "string" && typeof o["name"] === "string"
    ? { type: o["type"], id: o["id"], name: o["name"], agents: [] }
    : undefined;
}

/**
 * The context of the call to the specialist. Called as a tool (by the gateway, another agent,
 * a client with a mesh context), the orchestrator continues its caller's context: the same
 * trace, one more hop (so a loop through the orchestrator still meets the hop limit), the
 * caller's deadline if sooner; the session's history and facts are the conversation's.
 * Called directly (the CLI), it starts one.
 */
function contextForCall(
  agent: string,
  sessionId: string,
  timeoutMs: number,
  session: { facts: Record<string, unknown>; history: readonly Turn[] } | undefined,
): MeshContext {
  const caller = currentMeshContext();
  const conversation = { sessionId, facts: session?.facts ?? {}, history: session?.history ?? [] };
  if (!caller) return rootContext({ caller: "orchestrator", timeoutMs, ...conversation });
  const child = childContext(caller, "orchestrator", agent);
  const deadline = Math.min(caller.deadline ?? Number.POSITIVE_INFINITY, Date.now() + timeoutMs);
  return { ...child, ...conversation, deadline };
}

function answerText(r: CallToolResult): string {
  const structured = (r.structuredContent as { answer?: unknown } | undefined)?.answer;
  return typeof structured === "string" ? structured : resultText(r);
}

/** The agent answered, with no (usable) vocabulary: a protocol error (no such resource) or one that is not JSON. */
function answeredWithout(e: unknown): boolean {
  return e instanceof ProtocolError || e instanceof SyntaxError;
}
