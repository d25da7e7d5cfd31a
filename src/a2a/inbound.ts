import type { IncomingMessage, ServerResponse } from "node:http";
import { createHash, randomUUID } from "node:crypto";
import {
  A2A_PROTOCOL_VERSION,
  A2A_VERSION_HEADER,
  AgentCard,
  Role,
  TaskState,
  type AgentSkill,
  type Message,
  type Part,
} from "@a2a-js/sdk";
import {
  AgentEvent,
  defaultServerCallContextBuilder,
  JsonRpcTransportHandler,
  UnauthenticatedUser,
  validateVersion,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
} from "@a2a-js/sdk/server";
import { RequestMalformedError } from "@a2a-js/sdk/errors";
import type { CallToolResult } from "@modelcontextprotocol/server";
import type { MeshClient } from "../client/meshClient.ts";
import { rootContext } from "../context/meshContext.ts";
import { currentPrincipal } from "../http/principal.ts";
import { PRINCIPAL_META } from "../protocol/keys.ts";
import type { Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { MAX_ARGUMENT_DEPTH, nestsDeeperThan } from "../protocol/limits.ts";
import { resultText } from "../protocol/results.ts";
import { MeshA2aRequestHandler, SharedA2aTaskStore, watchTask } from "./taskStore.ts";
import { recordedCall, RecentCalls } from "../gateway/callLog.ts";

/** Where the gateway serves A2A: /a2a/<agent> (JSON-RPC) and /a2a/<agent>/.well-known/agent-card.json. */
export const A2A_PATH = /^\/a2a\/([a-z][a-z0-9-]{0,62})(\/\.well-known\/agent-card\.json)?\/?$/;

/** How long one A2A message may take through the mesh. @default 120000 */
export const A2A_CALL_TIMEOUT_MS = 120_000;

/**
 * Deepest nesting of a JSON-RPC request at /a2a: the A2A envelope's own levels (at most 8,
 * e.g. params.message.parts[i].data) plus what a tool's arguments may have. Checked before
 * the SDK walks the request (recursively). @default 40
 */
export const A2A_MAX_DEPTH = MAX_ARGUMENT_DEPTH + 8;

/**
 * One agent kind of the mesh as an A2A 1.0 agent (JSON-RPC over HTTP, SSE streaming), built on
 * the official A2A JavaScript SDK: its Agent Card lists the agent's tools as skills (its `ask`
 * tool with its example questions first), and a message is answered by the agent's `ask`
 * through the mesh, with the A2A context as the mesh session (one per client and context id:
 * sessionFor). Its tasks live in the mesh's shared state (a2aTasks.ts), so every gateway
 * replica answers for them, to the client that created them only.
 */
export class A2aAgentEndpoint {
  private readonly agent: string;
  private readonly mesh: MeshClient;
  private readonly logger: Logger;
  private readonly bearer: boolean;
  private readonly handler: MeshA2aRequestHandler;
  private readonly transport: JsonRpcTransportHandler;
  private origin = "http://127.0.0.1";

  /** `store`: where its tasks live (one per agent kind; in memory when omitted, for tests). */
  constructor(o: { agent: string; mesh: MeshClient; logger: Logger; bearer: boolean; store?: SharedA2aTaskStore; calls?: RecentCalls }) {
    this.agent = o.agent;
    this.mesh = o.mesh;
    this.logger = o.logger;
    this.bearer = o.bearer;
    const store = o.store ?? new SharedA2aTaskStore({ instance: "gateway" });
    this.handler = new MeshA2aRequestHandler(
      this.card(),
      store,
      new AskExecutor(o.agent, o.mesh, o.logger, store, o.calls ?? new RecentCalls()),
    );
    this.transport = new JsonRpcTransportHandler(this.handler);
  }

  /**
   * The agent card, for the address clients reach this gateway by, in the SDK's in-memory shape
   * (its request handler takes that); cardJson() is what goes on the wire.
   */
  card(): AgentCard {
    const info = this.mesh.catalog.agent(this.agent);
    const tools = info?.tools ?? [];
    const ask = tools.find((t) => t.name === "ask");
    const examples = examplesOf(ask?.description ?? "");
    const skills: AgentSkill[] = [
      ...(ask
        ? [
            {
              id: "ask",
              name: ask.title ?? `Ask ${this.agent}`,
              description: ask.description || `Ask ${this.agent} in words.`,
              // A skill has at least one tag (A2A 1.0 requires it).
              tags: nonEmpty(info?.tags.filter((t) => t !== "mcp") ?? [], [this.agent]),
              examples,
              inputModes: ["text/plain"],
              outputModes: ["text/plain"],
              securityRequirements: [],
            },
          ]
        : []),
      ...tools
        .filter((t) => t.name !== "ask")
        .map((t) => ({
          id: t.name,
          name: t.title ?? t.name,
          description: `${t.description ?? ""} (an MCP tool of ${this.agent}: call it through the gateway's /mcp as ${this.agent}__${t.name}; over A2A, ask in words)`,
          tags: [this.agent],
          examples: [],
          inputModes: ["text/plain"],
          outputModes: ["text/plain"],
          securityRequirements: [],
        })),
    ];
    return {
      name: this.agent,
      description: info?.description || `The ${this.agent} agent of a toolmesh mesh.`,
      provider: undefined,
      supportedInterfaces: [
        { url: `${this.origin}/a2a/${this.agent}`, protocolBinding: "JSONRPC", tenant: "", protocolVersion: A2A_PROTOCOL_VERSION },
      ],
      version: "1.0.0",
      capabilities: { streaming: true, pushNotifications: false, extensions: [], extendedAgentCard: false },
      securitySchemes: this.bearer
        ? {
            bearer: {
              scheme: {
                $case: "httpAuthSecurityScheme",
                value: { scheme: "Bearer", bearerFormat: "opaque", description: "The gateway's client token (MESH_GATEWAY_TOKEN)" },
              },
            },
          }
        : {},
      securityRequirements: this.bearer ? [{ schemes: { bearer: { list: [] } } }] : [],
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain"],
      skills,
      signatures: [],
    };
  }

  /**
   * The agent card as A2A 1.0 JSON: ProtoJSON of the card (the specification's section 5.5 and
   * ADR-001), by the SDK's own converter. A oneof is its member's field, so the bearer scheme is
   * `{"httpAuthSecurityScheme": {"scheme": "Bearer", …}}`, never the in-memory
   * `{"scheme": {"$case": …}}` that strict parsers refuse and the Python SDK drops.
   */
  cardJson(): unknown {
    return AgentCard.toJSON(this.card());
  }

  /** The agent card is public (it says how to authenticate); the JSON-RPC endpoint is not. */
  isPublic(req: IncomingMessage): boolean {
    return req.method === "GET" && (req.url ?? "").split("?")[0]!.endsWith("/.well-known/agent-card.json");
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    this.origin = `http://${req.headers.host ?? "127.0.0.1"}`;
    if (req.method === "GET" && (req.url ?? "").split("?")[0]!.endsWith("/agent-card.json")) {
      const json = JSON.stringify(this.cardJson());
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache" }).end(json);
      return;
    }
    if (req.method !== "POST") {
      res
        .writeHead(405, { allow: "GET, POST", "content-type": "application/json" })
        .end(JSON.stringify({ error: "POST JSON-RPC here; GET .well-known/agent-card.json" }));
      return;
    }
    // Only an id JSON-RPC allows is echoed (a nested one is no id).
    const given = (body as { id?: unknown } | undefined)?.id;
    const id = typeof given === "string" || typeof given === "number" ? given : null;
    try {
      if (nestsDeeperThan(body, A2A_MAX_DEPTH))
        throw new RequestMalformedError(
          `Invalid params: the request nests deeper than ${A2A_MAX_DEPTH} levels (its metadata or data parts); send flatter JSON.`,
        );
      const requestedVersion = header(req, A2A_VERSION_HEADER);
      const context = defaultServerCallContextBuilder({
        extensions: undefined,
        user: new UnauthenticatedUser(),
        headers: req.headers as never,
        ...(requestedVersion ? { requestedVersion } : {}),
      });
      validateVersion(context.requestedVersion, this.card(), "JSONRPC");
      const answer = await this.transport.handle(body as Record<string, unknown>, context);
      if (typeof (answer as AsyncGenerator)[Symbol.asyncIterator] !== "function") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
        return;
      }
      const stream = answer as AsyncGenerator<unknown>;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      try {
        for await (const event of stream) {
          if (res.destroyed) break;
          res.write(`data: ${JSON.stringify(event)}\n\n`);
        }
      } catch (e) {
        if (!res.destroyed)
          res.write(
            `event: error\ndata: ${JSON.stringify({ jsonrpc: "2.0", id, error: JsonRpcTransportHandler.mapToJSONRPCError(e) })}\n\n`,
          );
      } finally {
        if (!res.writableEnded) res.end();
      }
    } catch (e) {
      this.logger.debug({ agent: this.agent, err: describeError(e) }, "A2A request refused");
      if (!res.headersSent)
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", id, error: JsonRpcTransportHandler.mapToJSONRPCError(e) }));
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Answers an A2A message with the agent's `ask` tool, through the mesh. */
class AskExecutor implements AgentExecutor {
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
    const status = (state: TaskState, text?: string) =>
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId,
          status: { state, timestamp: new Date().toISOString(), message: text ? agentMessage(text, taskId, contextId) : undefined },
          metadata: {},
        } as never),
      );
    bus.publish(
      AgentEvent.task(
        rc.task ?? {
          id: taskId,
          contextId,
          status: { state: TaskState.TASK_STATE_SUBMITTED, timestamp: new Date().toISOString(), message: undefined },
          artifacts: [],
          history: [rc.userMessage],
          metadata: {},
        },
      ),
    );
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
              signal: abort.signal,
              timeoutMs: A2A_CALL_TIMEOUT_MS,
              envelope: { [PRINCIPAL_META]: currentPrincipal() },
            },
          ),
      );
      const text = answerText(result);
      // The orchestrator asks before it changes anything: over A2A that is input-required; the
      // client's "yes" in the same context (the mesh session holds the plan) runs it.
      if ((result.structuredContent as { kind?: unknown } | undefined)?.kind === "confirm") {
        status(TaskState.TASK_STATE_INPUT_REQUIRED, (result.structuredContent as { message: string }).message);
        return;
      }
      bus.publish(
        AgentEvent.artifactUpdate({
          taskId,
          contextId,
          artifact: {
            artifactId: randomUUID(),
            name: "answer",
            description: `${this.agent}'s answer`,
            parts: [textPart(text)],
            metadata: undefined,
            extensions: [],
          },
          lastChunk: true,
          append: false,
          metadata: undefined,
        } as never),
      );
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
}

function nonEmpty<T>(list: T[], otherwise: T[]): T[] {
  return list.length > 0 ? list : otherwise;
}

/** The example questions an `ask` tool lists at the end of its description (askTool.ts). */
function examplesOf(description: string): string[] {
  const tail = /Examples: (.*)$/s.exec(description)?.[1] ?? "";
  return [...tail.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
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

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
