import type { CallToolResult } from "@modelcontextprotocol/client";
import type { MeshClient } from "../src/client/meshClient.ts";
import { resultText } from "../src/protocol/results.ts";
import { childContext, currentMeshContext, rootContext, type MeshContext, type Turn } from "../src/context/meshContext.ts";
import { describeError, isMeshError } from "../src/protocol/errors.ts";
import { silentLogger, type Logger } from "../src/logger.ts";
import { Bm25IntentClassifier, type Candidate, type IntentClassifier, type RoutableAgent } from "./router/classifier.ts";
import type { SessionStore } from "./session/sessionStore.ts";

export interface AskOptions {
  /** Continue this session (created when new). */
  sessionId?: string;
  /** Skip classification and ask this agent. */
  agent?: string;
  /** @default 30000 */
  timeoutMs?: number;
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
    }
  | { kind: "ambiguous" | "none"; message: string; sessionId: string; candidates: Candidate[] };

/**
 * The orchestrator agent: classifies a message to the specialist that should answer it,
 * forwards it to that agent's `ask` tool with the session's history and facts in the
 * MeshContext, and records the exchange in the session (Consul KV), so a later message,
 * possibly through another orchestrator process, continues the conversation.
 */
export class Orchestrator {
  private readonly mesh: MeshClient;
  private readonly sessions: SessionStore;
  private readonly classifier: IntentClassifier;
  private readonly logger: Logger;

  constructor(options: { mesh: MeshClient; sessions: SessionStore; classifier?: IntentClassifier; logger?: Logger }) {
    this.mesh = options.mesh;
    this.sessions = options.sessions;
    this.classifier = options.classifier ?? new Bm25IntentClassifier();
    this.logger = (options.logger ?? silentLogger).child({ component: "orchestrator" });
  }

  async ask(message: string, options: AskOptions = {}): Promise<AskResult> {
    const sessionId = options.sessionId ?? this.sessions.newId();
    // Consul KV down must not cost the answer: continue without history, and say so.
    let sessionSaved = true;
    const session = await this.sessions.load(sessionId).catch((e: unknown) => {
      if (!isMeshError(e) || !e.retryable) throw e;
      sessionSaved = false;
      this.logger.warn({ sessionId, err: describeError(e) }, "cannot read the session; answering without its history");
      return undefined;
    });
    const agents: RoutableAgent[] = this.mesh.catalog.agents().filter((a) => a.instances.length > 0);
    let agent = options.agent;
    let confidence: number | null = null;
    let candidates: Candidate[] = [];
    if (!agent) {
      const decision = await this.classifier.classify(message, agents);
      candidates = decision.candidates;
      if (decision.kind !== "route") {
        this.logger.info({ sessionId, kind: decision.kind, candidates }, "not routed");
        return { kind: decision.kind, message: decision.message, sessionId, candidates };
      }
      agent = decision.agent;
      confidence = decision.confidence;
    }
    const context = contextForCall(agent, sessionId, options.timeoutMs ?? 30_000, session);
    const { result, instance } = await this.mesh.call(agent, "ask", { question: message }, { context });
    const answer = answerText(result);
    const sources = ((result.structuredContent as { sources?: unknown } | undefined)?.sources as string[] | undefined) ?? [];
    const at = new Date().toISOString();
    if (sessionSaved) {
      await this.sessions
        .record(
          sessionId,
          [
            { role: "user", text: message, at },
            { role: "agent", text: answer, agent, at },
          ],
          { lastAgent: agent },
        )
        .catch((e: unknown) => {
          if (!isMeshError(e) || !e.retryable) throw e;
          sessionSaved = false;
          this.logger.warn({ sessionId, err: describeError(e) }, "cannot save the session");
        });
    }
    this.logger.info({ sessionId, agent, instance, traceId: context.traceId, confidence }, "answered");
    return { kind: "answer", answer, agent, instance, confidence, sources, sessionId, sessionSaved, traceId: context.traceId, candidates };
  }
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
