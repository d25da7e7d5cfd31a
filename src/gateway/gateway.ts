import type { ServerResponse } from "node:http";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ErrorCode,
  ListRootsRequestSchema,
  ListToolsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  SetLevelRequestSchema,
  type CallToolResult,
  type LoggingLevel,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { MeshClient } from "../client/meshClient.ts";
import { ClientPool } from "../client/pool.ts";
import { childContext, fromMeta, META_PREFIX, rootContext, type MeshContext } from "../context/meshContext.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { argumentProblem } from "../protocol/limits.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { DYNAMIC_TOOLS, DynamicCatalog } from "./dynamic.ts";
import { installResourcesAndPrompts } from "./resources.ts";
import { gatewayToolName, parseGatewayToolName, toolFilter } from "./toolNames.ts";

/** Longest silence from an agent during a call through the gateway; progress resets it. @default 60000 */
export const GATEWAY_IDLE_TIMEOUT_MS = 60_000;
/** Longest call through the gateway, progress or not. @default 3600000 (1 h) */
export const GATEWAY_MAX_CALL_MS = 3_600_000;

export interface GatewayOptions {
  mesh: MeshClient;
  /** `agent.tool` patterns to offer (default all); a bare agent name means all its tools. */
  include?: readonly string[];
  /** `agent.tool` patterns to hide. */
  exclude?: readonly string[];
  /** Offer three meta-tools (search, describe, call) instead of every tool. */
  dynamic?: boolean;
  idleTimeoutMs?: number;
  maxCallMs?: number;
  logger?: Logger;
}

/** What one client session sees. */
type View = { kind: "mesh" } | { kind: "agent"; agent: string } | { kind: "dynamic" };

type Extra = { signal: AbortSignal; sendNotification: Server["notification"] };

/**
 * The whole mesh as one MCP server: every tool of every agent with a healthy instance,
 * named `agent__tool`, kept live (clients get tools/list_changed when the catalog
 * changes), each call forwarded through discovery with a MeshContext (the client's trace
 * continued, the gateway in the caller chain), progress and cancellation relayed. Also
 * serves one agent kind as its own servers present it, and a dynamic view for meshes
 * too large to list.
 */
export class Gateway {
  private readonly mesh: MeshClient;
  private readonly visible: (agent: string, tool: string) => boolean;
  private readonly dynamic: boolean;
  private readonly idleTimeoutMs: number;
  private readonly maxCallMs: number;
  private readonly logger: Logger;
  private readonly sessions = new Map<Server, View>();
  private readonly listings = new Map<string, Listing>();
  private readonly search: DynamicCatalog;
  private readonly relaying = new WeakMap<Server, () => boolean>();
  /** Calls taken by the fast path, per session, by JSON-RPC id (for cancellation). */
  private readonly fastCalls = new WeakMap<Server, Map<string | number, AbortController>>();
  private pending: NodeJS.Timeout | undefined;

  constructor(options: GatewayOptions) {
    this.mesh = options.mesh;
    this.visible = toolFilter(options.include ?? [], options.exclude ?? []);
    this.dynamic = options.dynamic ?? false;
    this.idleTimeoutMs = options.idleTimeoutMs ?? GATEWAY_IDLE_TIMEOUT_MS;
    this.maxCallMs = options.maxCallMs ?? GATEWAY_MAX_CALL_MS;
    this.logger = (options.logger ?? silentLogger).child({ component: "gateway" });
    this.search = new DynamicCatalog(() => this.tools());
    this.mesh.catalog.on("change", () => this.scheduleListChanged());
  }

  /** Tools of the whole mesh now: healthy agents only, filtered, namespaced. */
  tools(): Tool[] {
    const out: Tool[] = [];
    for (const agent of this.mesh.catalog.agents()) {
      for (const tool of this.agentTools(agent.name)) {
        const name = gatewayToolName(agent.name, tool.name);
        if (!name) {
          this.logger.warn({ agent: agent.name, tool: tool.name }, "tool name cannot be namespaced within MCP's rules; not offered");
          continue;
        }
        out.push({
          ...tool,
          name,
          title: `${agent.name}: ${tool.title ?? tool.name}`,
          description: `[${agent.name}] ${tool.description ?? ""}`.trim(),
        });
      }
    }
    return out;
  }

  /** The tools of one agent kind, unprefixed; none while every replica is down. */
  agentTools(agent: string): Tool[] {
    const a = this.mesh.catalog.agent(agent);
    return a && a.instances.length > 0 ? a.tools.filter((t) => this.visible(agent, t.name)) : [];
  }

  /** Whether an agent kind has a healthy instance (the passthrough endpoint needs one). */
  hasAgent(agent: string): boolean {
    return (this.mesh.catalog.agent(agent)?.instances.length ?? 0) > 0;
  }

  /**
   * A fresh low-level MCP server for one client session: the whole mesh (agent__tool, or
   * the dynamic meta-tools), or, with `agent`, one agent kind exactly as its servers
   * present it (unprefixed names), load-balanced across its healthy replicas.
   */
  createServer(agent?: string): Server {
    const view: View = agent ? { kind: "agent", agent } : this.dynamic ? { kind: "dynamic" } : { kind: "mesh" };
    const server = new Server(
      {
        name: agent ? `toolmesh-${agent}` : "toolmesh-gateway",
        title: agent ? `${agent} (through the toolmesh gateway)` : "toolmesh gateway",
        version: "0.1.0",
      },
      {
        capabilities: {
          tools: { listChanged: true },
          logging: {},
          ...(view.kind === "dynamic"
            ? {}
            : { resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, completions: {} }),
        },
        instructions:
          view.kind === "agent"
            ? `The ${view.agent} agent of the toolmesh mesh, served by whichever of its replicas is healthy.`
            : view.kind === "dynamic"
              ? "The toolmesh mesh, too large to list: search_tools finds tools, describe_tool shows one's input schema, call_tool calls it."
              : "Every agent of the toolmesh mesh, as tools named <agent>__<tool>. The list changes as agents come and go.",
      },
    );
    // Server→client requests of an agent (sampling, elicitation, roots) must reach the client
    // whose call caused them, and the answer the same replica; so must the agents' log
    // messages and resource updates. A session that needs any of that gets upstream
    // connections of its own (its relay pool), which relay them; others share the gateway's.
    let relayPool: ClientPool | undefined;
    let logLevel: LoggingLevel | undefined;
    const needsRelay = () => {
      const caps = server.getClientCapabilities() ?? {};
      return Boolean(relayPool) || logLevel !== undefined || Boolean(caps.sampling || caps.elicitation || caps.roots);
    };
    const relay = (required = false): ClientPool | undefined => {
      if (!required && !needsRelay()) return undefined;
      const caps = server.getClientCapabilities() ?? {};
      relayPool ??= new ClientPool({
        clientName: "toolmesh-gateway",
        // The gateway's own mesh credentials: a client's token is never passed on.
        token: this.mesh.tokenFor,
        capabilities: {
          ...(caps.sampling ? { sampling: caps.sampling } : {}),
          ...(caps.elicitation ? { elicitation: caps.elicitation } : {}),
          ...(caps.roots ? { roots: {} } : {}),
        },
        configure: (client) => {
          if (caps.sampling)
            client.setRequestHandler(CreateMessageRequestSchema, (req, extra) =>
              server.createMessage(req.params, { signal: extra.signal }),
            );
          if (caps.elicitation)
            client.setRequestHandler(ElicitRequestSchema, (req, extra) => server.elicitInput(req.params, { signal: extra.signal }));
          if (caps.roots)
            client.setRequestHandler(ListRootsRequestSchema, (_req, extra) => server.listRoots(undefined, { signal: extra.signal }));
          const ignore = () => undefined;
          client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void server.sendLoggingMessage(n.params).catch(ignore));
          client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void server.sendResourceUpdated(n.params).catch(ignore));
          if (view.kind !== "dynamic") {
            client.setNotificationHandler(ResourceListChangedNotificationSchema, () => void server.sendResourceListChanged().catch(ignore));
            client.setNotificationHandler(PromptListChangedNotificationSchema, () => void server.sendPromptListChanged().catch(ignore));
          }
        },
        onConnected: async (client) => {
          if (logLevel !== undefined && client.getServerCapabilities()?.logging) await client.setLoggingLevel(logLevel);
        },
        logger: this.logger,
      });
      return relayPool;
    };
    // The client's log level applies at the agents, which then send only what it asked for.
    server.setRequestHandler(SetLevelRequestSchema, async (req) => {
      logLevel = req.params.level;
      await relay(true)!.each(async (c) => (c.getServerCapabilities()?.logging ? c.setLoggingLevel(req.params.level) : undefined));
      return {};
    });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: this.offered(view) }));
    if (view.kind !== "dynamic") {
      installResourcesAndPrompts(server, {
        mesh: this.mesh,
        agents: () => (view.kind === "agent" ? [view.agent] : this.healthyAgents()),
        prefix: view.kind === "mesh",
        pool: relay,
        logger: this.logger,
      });
    }
    server.setRequestHandler(CallToolRequestSchema, (request, extra) => this.dispatch(view, request.params, extra, relay()));
    this.sessions.set(server, view);
    // Whether this session's calls need the SDK server's full path (relayed server-to-client
    // messages or progress); see takeCall.
    this.relaying.set(server, needsRelay);
    if (!this.listings.has(viewKey(view))) this.listings.set(viewKey(view), this.listing(view));
    server.onclose = () => {
      this.sessions.delete(server);
      void relayPool?.closeAll();
    };
    return server;
  }

  /**
   * The fast path for tools/call: when a session relays nothing (no sampling, elicitation,
   * roots or log level) and the call asks for no progress, the gateway answers it without
   * the SDK server's request machinery (validation, SSE framing, Node/web request
   * conversion): one JSON-RPC response as application/json, the call itself forwarded
   * exactly as on the full path (context, deadline, failover). A client's
   * notifications/cancelled for such a call is honoured here too. Returns false to leave a
   * request to the full path (anything else, including every error case).
   */
  takeCall(server: Server, body: unknown, res: ServerResponse): boolean {
    const view = this.sessions.get(server);
    if (!view || view.kind === "dynamic" || Array.isArray(body) || typeof body !== "object" || body === null) return false;
    const msg = body as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: Record<string, unknown> };
    const calls = this.fastCalls.get(server);
    if (msg.method === "notifications/cancelled") {
      const ctl = calls?.get(msg.params?.["requestId"] as string | number);
      if (!ctl) return false;
      ctl.abort(new Error(String(msg.params?.["reason"] ?? "cancelled by the client")));
      res.writeHead(202).end();
      return true;
    }
    if (msg.jsonrpc !== "2.0" || msg.method !== "tools/call" || (typeof msg.id !== "string" && typeof msg.id !== "number")) return false;
    const params = msg.params;
    const name = params?.["name"];
    const args = params?.["arguments"] ?? {};
    const meta = (params?.["_meta"] ?? {}) as Record<string, unknown>;
    if (typeof name !== "string" || typeof args !== "object" || args === null || Array.isArray(args) || typeof meta !== "object")
      return false;
    if (meta["progressToken"] !== undefined || this.relaying.get(server)?.() !== false || argumentProblem(args)) return false;
    const target = this.resolve(view, name);
    if (!target) return false;

    const id = msg.id;
    const ctl = new AbortController();
    const live = calls ?? new Map<string | number, AbortController>();
    if (!calls) this.fastCalls.set(server, live);
    live.set(id, ctl);
    res.once("close", () => {
      live.delete(id);
      if (!res.writableFinished) ctl.abort(new Error("the client went away"));
    });
    const extra = { signal: ctl.signal, sendNotification: (() => Promise.resolve()) as Server["notification"] };
    void this.forward(target.agent, target.tool, { arguments: args as Record<string, unknown>, _meta: meta }, extra, undefined).then(
      (result) => reply(res, { jsonrpc: "2.0", id, result }),
      // Only a cancelled call throws here. MCP sends no answer to one, but this HTTP request
      // must end: with LSP's RequestCancelled code, which SDK clients ignore once cancelled.
      () => reply(res, { jsonrpc: "2.0", id, error: { code: -32_800, message: "Request cancelled by the client" } }),
    );
    return true;
  }

  /**
   * The agent and tool a name offered in this view stands for, or undefined when the view
   * offers no such tool now. Looks only at the one agent's tools (no mesh-wide listing per call).
   */
  private resolve(view: View, name: string): { agent: string; tool: string } | undefined {
    if (view.kind === "agent")
      return this.agentTools(view.agent).some((t) => t.name === name) ? { agent: view.agent, tool: name } : undefined;
    const target = parseGatewayToolName(name);
    if (!target || gatewayToolName(target.agent, target.tool) !== name) return undefined;
    return this.agentTools(target.agent).some((t) => t.name === target.tool) ? target : undefined;
  }

  private listing(view: View): Listing {
    const tools = this.offered(view)
      .map((t) => `${t.name}:${JSON.stringify(t.inputSchema)}`)
      .sort()
      .join("|");
    // Resources and prompts are fetched from the agents on demand: they can change when
    // the set of agents with a healthy instance does.
    const agents = view.kind === "agent" ? String(this.hasAgent(view.agent)) : this.healthyAgents().join(",");
    return { tools, agents };
  }

  /** Agents with at least one healthy instance, sorted. */
  healthyAgents(): string[] {
    return this.mesh.catalog
      .agents()
      .filter((a) => a.instances.length > 0)
      .map((a) => a.name)
      .sort();
  }

  close(): void {
    clearTimeout(this.pending);
    this.sessions.clear();
  }

  private offered(view: View): Tool[] {
    if (view.kind === "agent") return this.agentTools(view.agent);
    if (view.kind === "dynamic") return DYNAMIC_TOOLS;
    return this.tools();
  }

  private async dispatch(
    view: View,
    params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> },
    extra: Extra,
    pool: ClientPool | undefined,
  ): Promise<CallToolResult> {
    // The same limits as the agents', before anything is parsed further or forwarded.
    const problem = argumentProblem(params.arguments);
    if (problem) throw new McpError(ErrorCode.InvalidParams, `Invalid arguments for ${params.name}: ${problem}.`);
    if (view.kind === "dynamic") {
      return this.search.handle(params.name, params.arguments ?? {}, (name, args) => {
        const target = this.resolve({ kind: "mesh" }, name);
        if (!target) return Promise.resolve(unknownTool(name, "search_tools finds the tools available now"));
        return this.forward(target.agent, target.tool, { arguments: args, _meta: params._meta }, extra, pool);
      });
    }
    const target = this.resolve(view, params.name);
    if (!target) {
      const hint =
        view.kind === "agent"
          ? `${view.agent} offers ${
              this.agentTools(view.agent)
                .map((t) => t.name)
                .join(", ") || "nothing right now (no healthy instance)"
            }`
          : "the gateway's tools are named <agent>__<tool>; list tools to see those available now";
      throw new McpError(ErrorCode.InvalidParams, `Unknown tool "${params.name}": ${hint}.`);
    }
    return this.forward(target.agent, target.tool, params, extra, pool);
  }

  /** Forwards one call through the mesh, relaying context, progress and cancellation. */
  private async forward(
    agent: string,
    tool: string,
    params: { arguments?: Record<string, unknown>; _meta?: Record<string, unknown> },
    extra: Extra,
    pool: ClientPool | undefined,
  ): Promise<CallToolResult> {
    const meta = params._meta ?? {};
    const progressToken = meta["progressToken"] as string | number | undefined;
    let context: MeshContext;
    try {
      context = this.contextFor(meta, agent);
    } catch (e) {
      return errorResult(e);
    }
    try {
      const { result } = await this.mesh.call(agent, tool, params.arguments ?? {}, {
        context,
        signal: extra.signal,
        ...(pool ? { pool } : {}),
        timeoutMs: this.maxCallMs,
        idleTimeoutMs: this.idleTimeoutMs,
        ...(progressToken !== undefined
          ? { onProgress: (p) => void extra.sendNotification({ method: "notifications/progress", params: { progressToken, ...p } }) }
          : {}),
      });
      return result;
    } catch (e) {
      if (extra.signal.aborted) throw e; // the client cancelled: it expects no answer
      this.logger.warn({ agent, tool, traceId: context.traceId, err: describeError(e) }, "call through the gateway failed");
      return errorResult(e);
    }
  }

  /**
   * The client's mesh context continued (gateway appended), or a new one continuing its
   * traceparent. The client's idempotency key is for this very call: it is carried on (an
   * onward call of an agent never inherits its caller's key, but the gateway forwards the
   * client's call itself).
   */
  private contextFor(meta: Record<string, unknown>, agent: string): MeshContext {
    const incoming = fromMeta(meta);
    const fromMesh = Object.keys(meta).some((k) => k.startsWith(META_PREFIX));
    const key = incoming?.idempotencyKey;
    const ctx =
      incoming && fromMesh
        ? childContext(incoming, "gateway", agent)
        : rootContext({ caller: "gateway", ...(typeof meta["traceparent"] === "string" ? { traceparent: meta["traceparent"] } : {}) });
    return key ? { ...ctx, idempotencyKey: key } : ctx;
  }

  /** After a catalog change, tell each session whose offered tools, resources or prompts changed (coalesced). */
  private scheduleListChanged(): void {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => {
      const views = new Map<string, View>();
      for (const view of this.sessions.values()) views.set(viewKey(view), view);
      const tools = new Set<string>();
      const members = new Set<string>();
      for (const [key, view] of views) {
        const now = this.listing(view);
        const before = this.listings.get(key);
        if (before?.tools !== now.tools) tools.add(key);
        if (before?.agents !== now.agents && view.kind !== "dynamic") members.add(key);
        this.listings.set(key, now);
      }
      if (tools.size === 0 && members.size === 0) return;
      this.logger.info({ views: [...new Set([...tools, ...members])], sessions: this.sessions.size }, "catalog changed; notifying clients");
      const ignore = () => undefined;
      for (const [server, view] of this.sessions) {
        if (tools.has(viewKey(view))) void server.sendToolListChanged().catch(ignore);
        if (members.has(viewKey(view))) {
          void server.sendResourceListChanged().catch(ignore);
          void server.sendPromptListChanged().catch(ignore);
        }
      }
    }, 50);
  }
}

/** What a view offers, to tell when it changed. */
interface Listing {
  tools: string;
  agents: string;
}

function reply(res: ServerResponse, message: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  const body = JSON.stringify(message);
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
}

function viewKey(view: View): string {
  return view.kind === "agent" ? `agent:${view.agent}` : view.kind;
}

function unknownTool(name: string, hint: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: `Unknown tool "${name}": ${hint}.` }] };
}

function errorResult(e: unknown): CallToolResult {
  const code = isMeshError(e) ? ` (${e.code})` : "";
  return { isError: true, content: [{ type: "text", text: `toolmesh${code}: ${describeError(e)}` }] };
}
