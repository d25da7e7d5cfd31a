import { acceptedContent, inputRequired, inputResponse } from "@modelcontextprotocol/server";
import * as z from "zod";
import { defineTool, type ToolCall, type ToolOutcome, type ToolSpec } from "../../src/agent/tools.ts";
import { defineAgent } from "../../src/agent/definition.ts";
import { businessError, textAndStructured } from "../../src/protocol/results.ts";
import { MeshClient } from "../../src/client/meshClient.ts";
import { MeshError } from "../../src/protocol/errors.ts";
import { ownerOf } from "../../src/http/principal.ts";
import { Orchestrator, type AskResult } from "./orchestrator.ts";
import { llmConfig } from "./planner/llm.ts";
import { ROUTER_TAG } from "./router/classifier.ts";
import { SESSION_ID_PATTERN, SessionStore } from "./session/sessionStore.ts";

export const ORCHESTRATOR_VERSION = "1.0.0";

export interface OrchestratorDeps {
  mesh: MeshClient;
  orchestrator: Orchestrator;
}

/** The key of the orchestrator's confirmation request in an input-required round trip. */
const CONFIRM_KEY = "confirm";
const Confirmation = z.object({ confirm: z.boolean() });

const Candidate = z.object({ agent: z.string(), score: z.number(), confidence: z.number() });

/** The `ask` tool's arguments. */
const AskInput = z.object({
  question: z.string().trim().min(1, "question must not be empty").max(4_000),
  session_id: z
    .string()
    .regex(SESSION_ID_PATTERN, "letters, digits, '.', '_' or '-' (at most 128)")
    .optional()
    .describe("Continue this conversation"),
  agent: z.string().max(63).optional().describe("Skip routing and ask this agent"),
  confirm: z.boolean().optional().describe("Run the steps that book or file something (the user agreed to them)"),
});

/** The `ask` tool's structured result: an answer, a change to confirm, a question back, or nothing found. */
const AskOutput = z.object({
  kind: z.enum(["answer", "confirm", "declined", "ambiguous", "none"]),
  answer: z.string().optional(),
  message: z.string().optional(),
  agent: z.string().optional(),
  instance: z.string().optional(),
  confidence: z.number().optional().describe("How sure the router was (absent when the agent was named)"),
  sources: z.array(z.string()).optional(),
  session_id: z.string(),
  session_saved: z.boolean().optional(),
  trace_id: z.string().optional(),
  candidates: z.array(Candidate),
  used: z.array(z.string()).optional().describe("agent.tool of every step that answered"),
  complete: z.boolean().optional().describe("True when everything asked was done: every step answered, every confirmed change made"),
  failures: z
    .array(
      z.object({
        kind: z.enum(["business", "mesh", "unanswered"]),
        step: z.string().optional(),
        agent: z.string().optional(),
        tool: z.string().optional(),
        changes: z.boolean().describe("A change (a booking, an expense) that did not happen"),
        message: z.string(),
      }),
    )
    .optional()
    .describe("What did not happen, and why (empty when complete)"),
  effects: z
    .array(z.object({ agent: z.string(), tool: z.string(), arguments: z.string().describe("The call's arguments as JSON") }))
    .optional()
    .describe("What would change once confirmed"),
});

/** The orchestrator's tool: `ask`, routed to the specialist that should answer. */
export function orchestratorTools(deps: OrchestratorDeps): ToolSpec[] {
  return [
    defineTool({
      name: "ask",
      title: "Ask the mesh",
      description:
        "Answers a question with the mesh's specialists (HR, finance, the handbook...): plans the tool calls it needs across agents (e.g. an employee's manager from hr, then that manager's net pay from finance), runs them, and returns the answer with every agent and tool it used and the trace id. " +
        'Anything that books or files something is only described until confirmed: call again with confirm: true, or answer "yes" in the same session. When a question could be for two agents it says so instead of guessing; pass `agent` to ask one directly.',
      input: AskInput,
      output: AskOutput,
      annotations: { readOnlyHint: false, idempotentHint: false, destructiveHint: false, openWorldHint: false },
      handler: (args, call) => ask(deps, args, call),
    }),
  ];
}

/**
 * Asks the orchestrator, in the caller's session (its own, or the mesh session it comes
 * with). A change to confirm is asked of a client that can answer an elicitation there and
 * then; an answer to that request that does not agree changes nothing.
 */
async function ask(deps: OrchestratorDeps, args: z.infer<typeof AskInput>, call: ToolCall): Promise<ToolOutcome> {
  const { question, session_id, agent, confirm } = args;
  if (agent && !deps.mesh.catalog.agent(agent)) {
    return businessError(
      `Unknown agent "${agent}". Agents: ${deps.mesh.catalog
        .agents()
        .map((a) => a.name)
        .join(", ")}.`,
    );
  }
  // The answer to our confirmation request, when this is the retry that carries it.
  const answered = inputResponse(call.sdk.mcpReq.inputResponses, CONFIRM_KEY);
  const agreed = confirm === true || acceptedContent(call.sdk.mcpReq.inputResponses, CONFIRM_KEY, Confirmation)?.confirm === true;
  if (answered.kind !== "missing" && !agreed) {
    const message = "Not confirmed: nothing was changed.";
    return textAndStructured({ kind: "declined", message, session_id: session_id ?? "", candidates: [] }, message);
  }
  // No session_id: the caller's mesh session, if it has one (the gateway's A2A bridge maps A2A contexts onto them).
  const inherited = call.context.sessionId && SESSION_ID_PATTERN.test(call.context.sessionId) ? call.context.sessionId : undefined;
  const sessionId = session_id ?? inherited;
  // The session is the asker's alone: its caller, or the client a gateway names (principal.ts).
  const r = await deps.orchestrator.ask(question, {
    ...(sessionId ? { sessionId } : {}),
    owner: ownerOf(call.sdk.mcpReq._meta),
    agent,
    ...(agreed ? { confirm: true } : {}),
  });
  // A client that can answer an elicitation is asked there and then (an input-required
  // round trip); the others get kind "confirm" and call again with confirm: true.
  if (r.kind === "confirm" && call.clientCapabilities.elicitation) return confirmRequest(r.message);
  return askContent(r);
}

/** The input-required round trip that asks the client to confirm a change. */
function confirmRequest(message: string): ToolOutcome {
  return inputRequired({
    inputRequests: {
      [CONFIRM_KEY]: inputRequired.elicit({
        message: message.replace(/ Reply "yes".*$/, " Go ahead?"),
        requestedSchema: {
          type: "object",
          properties: { confirm: { type: "boolean", title: "Go ahead", description: "Run the calls that change something" } },
          required: ["confirm"],
        },
      }),
    },
  });
}

/** The orchestrator's result as the tool's text and structured content. */
function askContent(r: AskResult): ToolOutcome {
  if (r.kind === "confirm")
    return textAndStructured(
      {
        kind: r.kind,
        message: r.message,
        session_id: r.sessionId,
        candidates: r.candidates,
        effects: r.effects.map((e) => ({ agent: e.agent, tool: e.tool, arguments: JSON.stringify(e.args) })),
      },
      r.message,
    );
  if (r.kind !== "answer")
    return textAndStructured({ kind: r.kind, message: r.message, session_id: r.sessionId, candidates: r.candidates }, r.message);
  return textAndStructured(
    {
      kind: r.kind,
      answer: r.answer,
      agent: r.agent,
      instance: r.instance,
      ...(r.confidence === null ? {} : { confidence: r.confidence }),
      sources: r.sources,
      session_id: r.sessionId,
      session_saved: r.sessionSaved,
      trace_id: r.traceId,
      candidates: r.candidates,
      used: r.used,
      complete: r.complete,
      failures: r.failures,
    },
    r.answer,
  );
}

export const orchestratorAgent = defineAgent<OrchestratorDeps>({
  name: "orchestrator",
  version: ORCHESTRATOR_VERSION,
  description: "Routes questions to the specialist agent that knows the answer, with multi-turn sessions kept in Consul.",
  intents: [ROUTER_TAG],
  async createDeps(runtime) {
    if (!runtime.consul)
      throw new MeshError("CONFIG_INVALID", "The orchestrator needs Consul (discovery and sessions); set CONSUL_HTTP_ADDR.");
    const mesh = new MeshClient({
      consul: runtime.consul,
      callerName: "orchestrator",
      catalogMode: "all",
      logger: runtime.logger,
      // The credentials the kit derived from the tokens it was given (--mesh-token-file too), not the environment's alone.
      ...(runtime.tokenFor ? { token: runtime.tokenFor } : {}),
      ...(runtime.identityKeys ? { identityKeys: runtime.identityKeys } : {}),
    });
    await mesh.start();
    // OPENAI_MODEL (with OPENAI_BASE_URL, OPENAI_API_KEY) turns the LLM planner on.
    const llm = llmConfig({});
    if (llm)
      runtime.logger.info(
        { model: llm.model, baseURL: llm.baseURL ?? "https://api.openai.com/v1" },
        "planning with an LLM; the built-in planner is the fallback",
      );
    return {
      mesh,
      orchestrator: new Orchestrator({ mesh, sessions: new SessionStore(runtime.consul), logger: runtime.logger, ...(llm ? { llm } : {}) }),
    };
  },
  instructions:
    "Ask anything about the company: the orchestrator routes the question to the specialist agent that knows, and keeps the conversation per session.",
  tools: orchestratorTools,
  dispose: (deps) => deps.mesh.close(),
});
