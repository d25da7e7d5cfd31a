import OpenAI from "openai";
import type { ChatCompletionFunctionTool, ChatCompletionMessageParam } from "openai/resources/chat/completions";
import type { CallToolResult } from "@modelcontextprotocol/client";
import type { Turn } from "../../../src/context/meshContext.ts";
import { describeError, MeshError } from "../../../src/protocol/errors.ts";
import { resultText } from "../../../src/protocol/results.ts";
import type { MeshModel } from "./model.ts";
import type { Target } from "./targets.ts";
import { usedBy, type StepRun } from "./run.ts";

/** An OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp's server). */
export interface LlmConfig {
  /** e.g. http://localhost:11434/v1 for Ollama. Default: OpenAI's. */
  baseURL?: string;
  apiKey?: string;
  model: string;
  /** Per request to the model. @default 60000 */
  timeoutMs?: number;
  /** Most rounds of tool calls before the model must answer. @default 6 */
  maxRounds?: number;
}

/** Tool results longer than this are cut before they go back to the model. @default 8000 */
export const MAX_TOOL_RESULT_CHARS = 8_000;

/**
 * The endpoint from flags, else the usual environment variables: OPENAI_MODEL (turns the LLM
 * planner on), OPENAI_BASE_URL, OPENAI_API_KEY (any value for a local server without keys).
 */
export function llmConfig(flags: { model?: string; baseURL?: string }, env: NodeJS.ProcessEnv = process.env): LlmConfig | undefined {
  // Empty means unset (docker-compose passes unset variables as "").
  const model = flags.model || env["OPENAI_MODEL"] || undefined;
  if (!model) return undefined;
  const baseURL = flags.baseURL || env["OPENAI_BASE_URL"] || undefined;
  if (baseURL !== undefined && !/^https?:\/\/[^\s]+$/.test(baseURL)) {
    throw new MeshError(
      "CONFIG_INVALID",
      `The LLM base URL "${baseURL}" is not an http(s) URL (e.g. http://localhost:11434/v1 for Ollama).`,
    );
  }
  const apiKey = env["OPENAI_API_KEY"] || (baseURL ? "none" : undefined);
  if (!apiKey) {
    throw new MeshError(
      "CONFIG_INVALID",
      "OPENAI_MODEL is set but OPENAI_API_KEY is not: set the key, or OPENAI_BASE_URL for a local server that needs none.",
    );
  }
  return { model, apiKey, ...(baseURL ? { baseURL } : {}) };
}

/** One tool call the model asked for, as the mesh runs it. */
export interface LlmCall {
  agent: string;
  tool: string;
  args: Record<string, unknown>;
}

export type LlmOutcome =
  | { kind: "answer"; answer: string; steps: StepRun[]; used: string[] }
  /** The model asked for calls that change something; nothing of that round ran. */
  | { kind: "confirm"; effects: LlmCall[]; steps: StepRun[] };

export type MeshCall = (call: LlmCall & { sideEffect: boolean }) => Promise<{ result: CallToolResult; instance: string }>;

const SYSTEM = [
  "You answer questions for the people of a company using the tools of its agent mesh (HR, finance, the handbook, and others).",
  "Call tools to find facts; never guess ids, names or numbers. Chain calls when one answer feeds another (an employee id found by hr feeds finance).",
  "If a name cannot be found or a step fails, say which part you could not answer and why.",
  "Answer briefly, with the numbers the tools returned.",
].join(" ");

/**
 * Plans with a model: the live catalog's tools are offered as functions (`agent__tool`), the
 * model's tool calls run through the mesh, their results go back to it, until it answers. A
 * call to a tool that changes something (no readOnlyHint, or destructiveHint) is not run unless
 * the user confirmed: the outcome is then "confirm" with the calls the model wanted. For a
 * message that does not ask to act, those tools are not offered at all.
 */
export class LlmPlanner {
  private readonly client: OpenAI;
  private readonly config: LlmConfig;

  constructor(config: LlmConfig) {
    this.config = config;
    this.client = new OpenAI({
      apiKey: config.apiKey ?? "none",
      ...(config.baseURL ? { baseURL: config.baseURL } : {}),
      timeout: config.timeoutMs ?? 60_000,
      maxRetries: 1,
    });
  }

  get model(): string {
    return this.config.model;
  }

  async answer(
    question: string,
    o: {
      model: MeshModel;
      history: readonly Turn[];
      call: MeshCall;
      /** The message asks to act: tools that change state are offered (their calls still wait for `confirm`). @default true */
      mayAct?: boolean;
      confirm: boolean;
      signal?: AbortSignal;
    },
  ): Promise<LlmOutcome> {
    const { functions, byName } = offer(o.model, o.mayAct ?? true);
    const messages: ChatCompletionMessageParam[] = [
      { role: "system", content: SYSTEM },
      ...o.history.slice(-10).map((t): ChatCompletionMessageParam => ({ role: t.role === "user" ? "user" : "assistant", content: t.text })),
      { role: "user", content: question },
    ];
    const steps: StepRun[] = [];
    const rounds = this.config.maxRounds ?? 6;
    for (let round = 0; round < rounds; round++) {
      const completion = await this.client.chat.completions.create(
        { model: this.config.model, messages, ...(functions.length ? { tools: functions, tool_choice: "auto" as const } : {}) },
        o.signal ? { signal: o.signal } : {},
      );
      const message = completion.choices[0]?.message;
      if (!message) throw new Error("the model answered with no choices");
      const calls = (message.tool_calls ?? []).filter((c) => c.type === "function");
      if (calls.length === 0) return finalAnswer(message.content, steps);
      const planned = calls.map((c) => ({
        id: c.id,
        name: c.function.name,
        target: byName.get(c.function.name),
        args: parseArgs(c.function.arguments),
      }));
      const effects = planned.filter((p) => p.target?.sideEffect && p.args.ok);
      if (effects.length > 0 && !o.confirm) return { kind: "confirm", effects: effects.map(asCall), steps };
      messages.push({ role: "assistant", content: message.content ?? null, tool_calls: calls });
      const results = await Promise.all(planned.map((p, i) => runCall(p, `l${round + 1}.${i + 1}`, steps, o.call)));
      planned.forEach((p, i) => messages.push({ role: "tool", tool_call_id: p.id, content: results[i]! }));
    }
    const used = usedBy(steps);
    return {
      kind: "answer",
      answer: `I could not finish within ${rounds} rounds of tool calls; the question may need to be split.${used.length ? `\n\n— ${used.join(", ")}` : ""}`,
      steps,
      used,
    };
  }
}

/** A call the model asked for: the function it named (the target, when there is one) and its parsed arguments. */
interface Planned {
  id: string;
  name: string;
  target: Target | undefined;
  args: ReturnType<typeof parseArgs>;
}

/** The model's answer (it asked for no more calls), with the agent.tool of every step that answered. */
function finalAnswer(content: string | null | undefined, steps: StepRun[]): LlmOutcome {
  const used = usedBy(steps);
  const text = (content ?? "").trim() || "The model gave no answer.";
  return { kind: "answer", answer: used.length ? `${text}\n\n— ${used.join(", ")}` : text, steps, used };
}

/** A state-changing call as the user is asked to confirm it. */
function asCall(p: Planned): LlmCall {
  return {
    agent: p.target!.agent,
    tool: p.target!.tool.name,
    args: (p.args as { value: Record<string, unknown> }).value,
  };
}

/**
 * Runs one call the model asked for through the mesh (recorded in `steps` as `id`); returns
 * what goes back to the model: the result (cut to MAX_TOOL_RESULT_CHARS) or the error.
 */
async function runCall(p: Planned, id: string, steps: StepRun[], call: MeshCall): Promise<string> {
  if (!p.target) return `Error: there is no tool "${p.name}". Use one of the functions offered.`;
  if (!p.args.ok) return `Error: the arguments are not a JSON object (${p.args.error}).`;
  const run: StepRun = {
    id,
    agent: p.target.agent,
    tool: p.target.tool.name,
    args: p.args.value,
    why: "the model's call",
    status: "error",
  };
  steps.push(run);
  const t0 = performance.now();
  try {
    const { result, instance } = await call({
      agent: run.agent,
      tool: run.tool,
      args: run.args,
      sideEffect: p.target.sideEffect,
    });
    run.instance = instance;
    run.status = result.isError ? "error" : "ok";
    const text = result.structuredContent ? JSON.stringify(result.structuredContent) : resultText(result);
    if (result.isError) run.error = resultText(result);
    return (result.isError ? `Error: ${resultText(result)}` : text).slice(0, MAX_TOOL_RESULT_CHARS);
  } catch (e) {
    run.error = describeError(e);
    return `Error: ${run.error}`;
  } finally {
    run.ms = Math.round((performance.now() - t0) * 10) / 10;
  }
}

/** The catalog's tools as functions: `agent__tool`, the agent named in the description. Routers (the orchestrator) are left out. */
function offer(model: MeshModel, mayAct: boolean): { functions: ChatCompletionFunctionTool[]; byName: Map<string, Target> } {
  const byName = new Map<string, Target>();
  const functions: ChatCompletionFunctionTool[] = [];
  const routers = new Set(model.agents.filter((a) => a.tags.includes("router")).map((a) => a.name));
  for (const t of model.targets) {
    // For a question, the tools that change state are not offered: a call to one is "no such tool".
    if (routers.has(t.agent) || (t.sideEffect && !mayAct)) continue;
    const name = `${t.agent}__${t.tool.name}`.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
    if (byName.has(name)) continue;
    byName.set(name, t);
    functions.push({
      type: "function",
      function: {
        name,
        description:
          `[${t.agent}] ${t.tool.description ?? t.tool.title ?? t.tool.name}${t.sideEffect ? " (changes data: needs the user's confirmation)" : ""}`.slice(
            0,
            1024,
          ),
        parameters: t.tool.inputSchema as Record<string, unknown>,
      },
    });
  }
  // `ask` tools are not targets of the built-in planner, but a model may use them.
  for (const a of model.agents) {
    const ask = a.tools.find((t) => t.name === "ask");
    if (!ask || routers.has(a.name)) continue;
    const name = `${a.name}__ask`;
    const target: Target = {
      agent: a.name,
      tool: ask,
      entityParams: [],
      required: ["question"],
      properties: {},
      sideEffect: false,
      actions: [],
      terms: new Set(),
    };
    byName.set(name, target);
    functions.push({
      type: "function",
      function: {
        name,
        description: `[${a.name}] ${ask.description ?? "Ask in plain language"}`.slice(0, 1024),
        parameters: ask.inputSchema as Record<string, unknown>,
      },
    });
  }
  return { functions, byName };
}

function parseArgs(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  try {
    const v = JSON.parse(text || "{}") as unknown;
    if (!v || typeof v !== "object" || Array.isArray(v)) return { ok: false, error: "not an object" };
    return { ok: true, value: v as Record<string, unknown> };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}
