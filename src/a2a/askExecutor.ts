// An A2A message answered by an agent's `ask` tool through the mesh: the A2A task's life
// (submitted, working, input-required, completed, failed, canceled) as the SDK's events.
import { createHash, randomUUID } from "node:crypto";
import { Role, TaskState, type Message, type Part } from "@a2a-js/sdk";
import { AgentEvent, type AgentExecutor, type ExecutionEventBus, type RequestContext } from "@a2a-js/sdk/server";
import type { CallToolResult } from "@modelcontextprotocol/server";
import type { MeshClient } from "../client/meshClient.ts";
import { rootContext } from "../context/meshContext.ts";
import { currentPrincipal } from "../http/principal.ts";
import { PRINCIPAL_META } from "../protocol/keys.ts";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { resultText } from "../protocol/results.ts";
import { watchTask, type SharedA2aTaskStore } from "./taskStore.ts";
import { recordedCall, type RecentCalls } from "../gateway/callLog.ts";

/** How long one A2A message may take through the mesh. @default 120000 */
export const A2A_CALL_TIMEOUT_MS = 120_000;

/** Answers an A2A message with the agent's `ask` tool, through the mesh. */
export class AskExecutor implements AgentExecutor {
  private readonly agent: string;
  private readonly mesh: MeshClient;
  private readonly logger: Logger;
  private readonly store: SharedA2aTaskStore;
  /** The gateway's recent calls (the console lists A2A messages too). */
  private readonly calls: RecentCalls;
  private readonly running = new Map<string, AbortController>();

  constructor(agent: string, mesh: MeshClient, logger: Logger, store: SharedA2aTaskStore, calls: RecentCalls) {
    this.agent = agent;
    this.mesh = mesh;
    this.logger = logger;
    this.store = store;
    this.calls = calls;
  }

  /** Stops the mesh call; execute() then publishes the canceled status. */
  cancelTask = async (taskId: string): Promise<void> => {
    this.running.get(taskId)?.abort(new Error("cancelled by the A2A client"));
  };

  async execute(rc: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const { taskId, contextId } = rc;
    const question = rc.userMessage.parts
      .map((p) => (p.content?.$case === "text" ? p.content.value : ""))
      .join("\n")
      .trim();
    const status = (state: TaskState, text?: string) => publishStatus(bus, taskId, contextId, state, text);
    bus.publish(AgentEvent.task(rc.task ?? submitted(rc)));
    if (!question) {
      status(TaskState.TASK_STATE_REJECTED, "Send the question as a text part.");
      bus.finished();
      return;
    }
    const abort = new AbortController();
    this.running.set(taskId, abort);
    // Heartbeat while it runs; a cancel recorded by another gateway replica stops it here.
    const unwatch = watchTask(this.store, taskId, abort, this.logger);
    status(TaskState.TASK_STATE_WORKING, `Asking ${this.agent} through the mesh.`);
    try {
      const result = await this.ask(question, contextId, abort.signal);
      const text = answerText(result);
      // The orchestrator asks before it changes anything: over A2A that is input-required; the
      // client's "yes" in the same context (the mesh session holds the plan) runs it.
      if ((result.structuredContent as { kind?: unknown } | undefined)?.kind === "confirm") {
        status(TaskState.TASK_STATE_INPUT_REQUIRED, (result.structuredContent as { message: string }).message);
        return;
      }
      bus.publish(AgentEvent.artifactUpdate(answerArtifact(taskId, contextId, this.agent, text)));
      status(result.isError ? TaskState.TASK_STATE_FAILED : TaskState.TASK_STATE_COMPLETED, text);
    } catch (e) {
      if (abort.signal.aborted) status(TaskState.TASK_STATE_CANCELED, "Cancelled at the client's request.");
      else {
        this.logger.warn({ agent: this.agent, err: describeError(e) }, "A2A message through the mesh failed");
        status(TaskState.TASK_STATE_FAILED, `The mesh could not answer: ${describeError(e)}`);
      }
    } finally {
      unwatch();
      this.running.delete(taskId);
      bus.finished();
    }
  }

  /**
   * The question to the agent's `ask` through the mesh, in the mesh session of the client's
   * context, recorded in the gateway's recent calls (with its hops while the console watches).
   */
  private async ask(question: string, contextId: string, signal: AbortSignal): Promise<CallToolResult> {
    const watching = this.calls.watching;
    const context = rootContext({
      caller: "gateway-a2a",
      timeoutMs: A2A_CALL_TIMEOUT_MS,
      sessionId: sessionFor(currentPrincipal(), contextId),
      ...(watching ? { reportHops: true } : {}),
    });
    const { result } = await recordedCall(
      this.calls,
      { agent: this.agent, tool: "ask", traceId: context.traceId, via: "a2a", hops: watching },
      () =>
        this.mesh.call(
          this.agent,
          "ask",
          { question },
          {
            context,
            signal,
            timeoutMs: A2A_CALL_TIMEOUT_MS,
            envelope: { [PRINCIPAL_META]: currentPrincipal() },
          },
        ),
    );
    return result;
  }
}

/** A task's status change, with the agent's message when there is one. */
function publishStatus(bus: ExecutionEventBus, taskId: string, contextId: string, state: TaskState, text?: string): void {
  bus.publish(
    AgentEvent.statusUpdate({
      taskId,
      contextId,
      status: { state, timestamp: new Date().toISOString(), message: text ? agentMessage(text, taskId, contextId) : undefined },
      metadata: {},
    } as never),
  );
}

/** The task of a new message, as submitted. */
function submitted(rc: RequestContext): NonNullable<RequestContext["task"]> {
  return {
    id: rc.taskId,
    contextId: rc.contextId,
    status: { state: TaskState.TASK_STATE_SUBMITTED, timestamp: new Date().toISOString(), message: undefined },
    artifacts: [],
    history: [rc.userMessage],
    metadata: {},
  };
}

/** The agent's answer as the task's one artifact. */
function answerArtifact(taskId: string, contextId: string, agent: string, text: string): Parameters<typeof AgentEvent.artifactUpdate>[0] {
  return {
    taskId,
    contextId,
    artifact: {
      artifactId: randomUUID(),
      name: "answer",
      description: `${agent}'s answer`,
      parts: [textPart(text)],
      metadata: undefined,
      extensions: [],
    },
    lastChunk: true,
    append: false,
    metadata: undefined,
  } as never;
}

/**
 * The mesh session of an A2A context: a digest of the whole context id and the client it
 * belongs to (its principal), so two context ids (`x/ctx/1`, `x_ctx_1`), or two clients' equal
 * ones, never share a session. A valid session id (SESSION_ID_PATTERN), 68 characters.
 */
function sessionFor(principal: string, contextId: string): string {
  return `a2a-${createHash("sha256")
    .update(JSON.stringify([principal, contextId]))
    .digest("hex")}`;
}

function answerText(r: CallToolResult): string {
  const structured = (r.structuredContent as { answer?: unknown } | undefined)?.answer;
  return typeof structured === "string" ? structured : resultText(r);
}

function textPart(text: string): Part {
  return { content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "text/plain" } as Part;
}

function agentMessage(text: string, taskId: string, contextId: string): Message {
  return {
    role: Role.ROLE_AGENT,
    messageId: randomUUID(),
    parts: [textPart(text)],
    taskId,
    contextId,
    extensions: [],
    metadata: {},
    referenceTaskIds: [],
  } as Message;
}
