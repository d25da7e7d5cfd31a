import type { CallToolResult } from "@modelcontextprotocol/client";
import { childContext, currentMeshContext, rootContext, type MeshContext, type Turn } from "../../src/context/meshContext.ts";
import { resultText } from "../../src/protocol/results.ts";
import type { Entity } from "./planner/model.ts";

// One message in its session, as the orchestrator answers it, and the MeshContext its calls
// to the specialists carry.

/** A session as loaded: what it remembers, and what was said. */
export interface LoadedSession {
  facts: Record<string, unknown>;
  history: readonly Turn[];
}

/** One message being answered: who sent it, in which session, within what time. */
export interface Exchange {
  message: string;
  sessionId: string;
  owner: string;
  timeoutMs: number;
  /** Undefined for a new session, or one that could not be read. */
  session: LoadedSession | undefined;
  /** False when the session could not be read (Consul unreachable): answered without history, and not saved. */
  saved: boolean;
}

/**
 * The context of the call to the specialist. Called as a tool (by the gateway, another agent,
 * a client with a mesh context), the orchestrator continues its caller's context: the same
 * trace, one more hop (so a loop through the orchestrator still meets the hop limit), the
 * caller's deadline if sooner; the session's history and facts are the conversation's.
 * Called directly (the CLI), it starts one.
 */
export function contextForCall(agent: string, x: Exchange): MeshContext {
  const { sessionId, timeoutMs, session } = x;
  const caller = currentMeshContext();
  const conversation = { sessionId, facts: session?.facts ?? {}, history: session?.history ?? [] };
  if (!caller) return rootContext({ caller: "orchestrator", timeoutMs, ...conversation });
  const child = childContext(caller, "orchestrator", agent);
  const deadline = Math.min(caller.deadline ?? Number.POSITIVE_INFINITY, Date.now() + timeoutMs);
  return { ...child, ...conversation, deadline };
}

/** An agent's `ask` answer: its structured `answer`, else its text. */
export function answerText(r: CallToolResult): string {
  const structured = (r.structuredContent as { answer?: unknown } | undefined)?.answer;
  return typeof structured === "string" ? structured : resultText(r);
}

/** Who the conversation was about, as the session's facts recorded it (anything else: no one). */
export function asEntity(v: unknown): Entity | undefined {
  if (!v || typeof v !== "object") return undefined;
  const o = v as Record<string, unknown>;
  return typeof o["type"] === "string" && typeof o["id"] === "string" && typeof o["name"] === "string"
    ? { type: o["type"], id: o["id"], name: o["name"], agents: [] }
    : undefined;
}
