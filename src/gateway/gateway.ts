import {
  ProtocolError,
  ProtocolErrorCode,
  Server,
  type CallToolResult,
  type Implementation,
  type InputRequiredResult,
  type LoggingLevel,
  type ServerContext,
  type ServerNotifier,
  type Tool,
} from "@modelcontextprotocol/server";
import type { MeshClient } from "../client/meshClient.ts";
import type { ClientPool, ListKind } from "../client/pool.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { describeError } from "../protocol/errors.ts";
import { argumentProblem } from "../protocol/limits.ts";
import { fastRequestContext, type FastToolCalls } from "../mcp/fastCalls.ts";
import { RecentCalls } from "./callLog.ts";
import { unknownToolRefusal, unknownToolResult, withMeshTaskId } from "./callTargets.ts";
import { CallGuard, type PolicySource } from "./callGuard.ts";
import type { GatewayCore, LegacySession } from "./core.ts";
import { DYNAMIC_TOOLS, DynamicCatalog } from "./dynamic.ts";
import { forwardCall, forwardRequest } from "./forward.ts";
import { ListChanges, type Listing } from "./listChanges.ts";
import type { PolicyDecision } from "./policy.ts";
import { relayPoolFor, type Relay } from "./relay.ts";
import { installResourcesAndPrompts, ResourceIndex } from "./resources.ts";
import { cacheHintsOf, capabilitiesOf, declaresTasksExtension, instructionsOf } from "./serverShape.ts";
import { ResourceSubscriptions } from "./subscriptions.ts";
import { installTaskMethods } from "./taskRequests.ts";
import { gatewayToolName, parseGatewayToolName, toolFilter } from "./toolNames.ts";
import { UpstreamLists } from "./upstreamLists.ts";
import { serverInfoOf, type View } from "./views.ts";

/**
 * Longest silence (no answer, no progress) from an agent during one attempt of a call
 * through the gateway; progress resets it. It is the gateway's per-attempt budget: a
 * read-only or idempotent call (or one with an idempotency key) leaves a silent replica for
 * another after half of it, as the CLI leaves one after half its deadline, and a call with
 * nowhere else to go ends with an error naming this limit. @default 60000
 */
export const GATEWAY_IDLE_TIMEOUT_MS = 60_000;
/** Longest call through the gateway, progress or not. @default 3600000 (1 h) */
export const GATEWAY_MAX_CALL_MS = 3_600_000;
/** How long clients may cache the gateway's lists: it is a live catalog. @default 5000 */
export const GATEWAY_LIST_TTL_MS = 5_000;

export interface GatewayOptions {
  /** A caller made with `relayInputRequests` (input requests go back to the gateway's clients). */
  mesh: MeshClient;
  /** `agent.tool` patterns to offer (default all); a bare agent name means all its tools. */
  include?: readonly string[];
  /** `agent.tool` patterns to hide. */
  exclude?: readonly string[];
  /** Offer three meta-tools (search, describe, call) instead of every tool. */
  dynamic?: boolean;
  idleTimeoutMs?: number;
  maxCallMs?: number;
  /**
   * Who may call which tool (policyStore.ts, from Consul KV): each caller's tools/list (every
   * view, and search_tools) shows only what it may call, and any other call is refused naming
   * the missing permission. Default: everything allowed.
   */
  policy?: PolicySource;
  /**
   * Where the gateway's protected-resource metadata is, when OAuth callers refused by the policy
   * should get an RFC 6750 step-up challenge (HTTP 403 insufficient_scope, MESH_OAUTH_STEP_UP=1)
   * besides the MCP error; undefined: the MCP error alone.
   */
  scopeChallenge?: () => string | undefined;
  logger?: Logger;
}

export type { View } from "./views.ts";

/** A 2025-era session's server and what it relays. */
interface SessionState {
  view: View;
  /** The session has upstream connections of its own (its client answers server requests, or set a log level). */
  relays: () => boolean;
  logLevel: () => LoggingLevel | undefined;
}

/**
 * The whole mesh as one MCP server: every tool of every agent with a healthy instance,
 * named `agent__tool`, kept live (2025-era sessions get list_changed, 2026-07-28 clients
 * on their subscriptions/listen streams), each call forwarded through discovery with a
 * MeshContext (the client's trace continued, the gateway in the caller chain), progress,
 * cancellation and input requests relayed. Also serves one agent kind as its own servers
 * present it, and a dynamic view for meshes too large to list. It keeps no per-client state
 * a second gateway replica could not rebuild: 2026-07-28 requests are served by a fresh
 * server each, and a 2025-era session's only state is its log level and subscriptions.
 */
export class Gateway implements GatewayCore {
  readonly mesh: MeshClient;
  /** The calls through this gateway, for the console. */
  readonly calls = new RecentCalls();
  private readonly visible: (agent: string, tool: string) => boolean;
  readonly dynamic: boolean;
  readonly idleTimeoutMs: number;
  readonly maxCallMs: number;
  readonly logger: Logger;
  /** Live 2025-era session servers (they get list_changed). */
  private readonly sessions = new Map<Server, SessionState>();
  /** List-changed notifications to sessions and listen streams. */
  private readonly changes: ListChanges;
  readonly search: DynamicCatalog;
  /** Upstream resource subscriptions, shared by every client that wants a URI's updates. */
  readonly subscriptions: ResourceSubscriptions;
  /** Which agent serves which resource URI. */
  readonly resources: ResourceIndex;
  /** Listen streams on the agents, for their own list changes. */
  private readonly upstreamLists: UpstreamLists;
  private readonly policy: GatewayOptions["policy"];
  /** The policy and the quotas, for the caller of the request being served. */
  private readonly guard: CallGuard;

  constructor(options: GatewayOptions) {
    this.mesh = options.mesh;
    this.visible = toolFilter(options.include ?? [], options.exclude ?? []);
    this.dynamic = options.dynamic ?? false;
    this.idleTimeoutMs = options.idleTimeoutMs ?? GATEWAY_IDLE_TIMEOUT_MS;
    this.maxCallMs = options.maxCallMs ?? GATEWAY_MAX_CALL_MS;
    this.logger = (options.logger ?? silentLogger).child({ component: "gateway" });
    this.policy = options.policy;
    this.guard = new CallGuard(this.policy, (agent) => this.agentTools(agent), options.scopeChallenge ?? (() => undefined), this.logger);
    this.search = new DynamicCatalog(() => this.tools());
    this.subscriptions = new ResourceSubscriptions(this.mesh, this.logger);
    this.resources = new ResourceIndex(this.mesh, this.logger);
    this.upstreamLists = new UpstreamLists(this.mesh, this.logger);
    this.changes = new ListChanges({
      listing: (view) => this.listing(view),
      sessions: () => [...this.sessions].map(([server, state]) => [server, state.view] as [Server, View]),
      logger: this.logger,
    });
    this.mesh.catalog.on("change", () => {
      this.upstreamLists.sync(this.healthyAgents());
      this.changes.schedule();
    });
    this.upstreamLists.sync(this.healthyAgents());
    // A new policy changes what each caller sees: every view's tool list is announced again.
    this.policy?.on("change", () => {
      for (const agent of this.healthyAgents()) this.changes.announce(agent, "tools");
    });
  }

  /** What the policy says about the current caller and one tool of an agent. */
  permission(agent: string, tool: Tool): PolicyDecision {
    return this.guard.permission(agent, tool);
  }

  /** The tools of one agent kind the current caller may call (what its listings show). */
  permittedTools(agent: string): Tool[] {
    const tools = this.agentTools(agent);
    return this.guard.active ? tools.filter((t) => this.permission(agent, t).allowed) : tools;
  }

  /**
   * Tools of the whole mesh now: healthy agents only, filtered, namespaced, in a stable order;
   * only those the current caller may call unless `all`.
   */
  tools(all = false): Tool[] {
    const out: Tool[] = [];
    for (const agent of this.mesh.catalog.agents()) {
      for (const tool of all ? this.agentTools(agent.name) : this.permittedTools(agent.name)) {
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

  /** The tools of one agent kind, unprefixed, sorted by name; none while every replica is down. */
  agentTools(agent: string): Tool[] {
    const a = this.mesh.catalog.agent(agent);
    if (!a || a.instances.length === 0) return [];
    return a.tools.filter((t) => this.visible(agent, t.name)).sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  }

  /** Whether an agent kind has a healthy instance (the passthrough endpoint needs one). */
  hasAgent(agent: string): boolean {
    return (this.mesh.catalog.agent(agent)?.instances.length ?? 0) > 0;
  }

  /**
   * A 2026-07-28 client opened a subscriptions/listen stream on a view's endpoint: the
   * resources it names are subscribed upstream (shared with every other client that wants
   * them) until the stream closes; their updates are published to the view's streams.
   */
  listen(view: View, uris: readonly string[], closed: Promise<void>): void {
    const notify = this.changes.notifier(view);
    if (!notify || view.kind === "dynamic") return;
    for (const uri of uris) {
      // The passthrough's agent answers for its own URIs; the whole mesh finds the owner.
      const owner = view.kind === "agent" ? Promise.resolve(view.agent) : this.resources.ownerFor(uri, this.healthyAgents());
      const release = owner.then((agent) => this.subscriptions.acquire(uri, agent, (u) => notify.resourceUpdated(u)));
      release.catch((e: unknown) =>
        this.logger.info({ uri, err: describeError(e) }, "a listen stream names a resource the gateway cannot subscribe to"),
      );
      void closed.then(async () => (await release.catch(() => undefined))?.());
    }
  }

  /**
   * An agent said one of its lists changed: the views that present it pass it on (the tool
   * list once the catalog has fetched it again; prompts and resources are listed on demand).
   */
  listChanged(agent: string, list: ListKind): void {
    if (list !== "tools" || this.agentTools(agent).length > 0) this.changes.announce(agent, list);
    else this.changes.schedule();
  }

  /** An agent said a resource changed (on any of the gateway's connections). */
  resourceUpdated(uri: string): void {
    this.subscriptions.updated(uri);
  }

  /** Agents with at least one healthy instance, sorted. */
  healthyAgents(): string[] {
    return this.mesh.catalog
      .agents()
      .filter((a) => a.instances.length > 0)
      .map((a) => a.name)
      .sort();
  }

  /** The view an endpoint serves: one agent kind (the passthrough), or the whole mesh. */
  viewFor(agent?: string): View {
    return agent ? { kind: "agent", agent } : this.dynamic ? { kind: "dynamic" } : { kind: "mesh" };
  }

  /**
   * Plain 2026-07-28 tool calls of a view, answered without a server instance per request
   * (the endpoint decides which calls are plain: no progress, no log level, no continuation).
   */
  fastToolCalls(view: View): FastToolCalls {
    const serverInfo = () => this.serverInfo(view);
    return {
      get serverInfo() {
        return serverInfo();
      },
      // A 2025 session that relays (server requests, log messages) needs its own connections: the SDK's path.
      accepts: (tool, session) => {
        const state = session ? this.sessions.get(session as Server) : undefined;
        if (session && (!state || state.relays())) return false;
        return view.kind === "dynamic" || this.resolve(view, tool) !== undefined;
      },
      call: (request, signal) => {
        const state = request.session ? this.sessions.get(request.session as Server) : undefined;
        const session = state ? { server: request.session as Server, logLevel: state.logLevel } : undefined;
        return this.dispatch(view, request.params, fastRequestContext(request, signal), NO_RELAY, session, request.rawArguments);
      },
    };
  }

  /** Who answers on a view's endpoint: the passthrough is its agent, as the agent introduced itself. */
  serverInfo(view: View): Implementation {
    const upstream = view.kind === "agent" ? this.mesh.identityOf(view.agent) : undefined;
    return upstream?.info ?? serverInfoOf(view);
  }

  /** Registers the publisher of an endpoint's 2026-07-28 listen streams (list changes reach them). */
  attach(view: View, notify: ServerNotifier): void {
    this.changes.attach(view, notify);
  }

  /**
   * A fresh low-level server (the gateway owns dispatch) for one 2026-07-28 request or one
   * 2025-era session of a view.
   */
  createServer(view: View, era: "modern" | "legacy"): Server {
    // The passthrough of an agent with task-supporting tools offers the Tasks extension as the agent does.
    const tasks =
      view.kind === "agent" ? this.offersTasks(view.agent) : view.kind === "mesh" && this.healthyAgents().some((a) => this.offersTasks(a));
    const server = new Server(this.serverInfo(view), {
      capabilities: capabilitiesOf(this.mesh, view, tasks),
      instructions: instructionsOf(this.mesh, view),
      cacheHints: cacheHintsOf(this.policy !== undefined, GATEWAY_LIST_TTL_MS),
    });
    // A 2025-era session whose client can answer server requests (sampling, elicitation,
    // roots) or that sets a log level gets upstream sessions of its own that relay them.
    let logLevel: LoggingLevel | undefined;
    const relay: Relay = era === "legacy" ? relayPoolFor(this, server, view, () => logLevel) : NO_RELAY;
    const session = era === "legacy" ? { server, logLevel: () => logLevel } : undefined;
    const via = () => ({ pool: relay.get(), session });
    if (server.getCapabilities().logging) installLogLevel(server, relay, (level) => (logLevel = level));
    server.setRequestHandler("tools/list", () => ({ tools: this.offered(view) }));
    const aggregation = view.kind === "dynamic" ? undefined : this.aggregate(server, view, via);
    server.setRequestHandler("tools/call", (request, ctx) => this.dispatch(view, request.params, ctx, relay, session));
    if (tasks && view.kind !== "dynamic") installTaskMethods(server, this, view, via);
    if (era === "legacy") {
      this.sessions.set(server, { view, relays: () => relay.get() !== undefined, logLevel: () => logLevel });
      server.onclose = () => {
        this.sessions.delete(server);
        relay.close();
        void aggregation?.close();
      };
    }
    return server;
  }

  /** Resources, prompts and completions of a view's agents on its server (the whole mesh's prefixed). */
  private aggregate(
    server: Server,
    view: View & { kind: "agent" | "mesh" },
    via: () => { pool: ClientPool | undefined; session: LegacySession | undefined },
  ) {
    return installResourcesAndPrompts(server, {
      mesh: this.mesh,
      agents: () => (view.kind === "agent" ? [view.agent] : this.healthyAgents()),
      prefix: view.kind === "mesh",
      pool: () => via().pool,
      subscriptions: this.subscriptions,
      index: this.resources,
      forward: (agent, request, ctx) => forwardRequest(this, agent, request, ctx, via()),
      logger: this.logger,
    });
  }

  close(): void {
    this.changes.close();
    this.sessions.clear();
    void this.subscriptions.close();
    void this.upstreamLists.close();
  }

  /** Whether an agent's instances offer the Tasks extension (their Consul meta says which capabilities they serve). */
  offersTasks(agent: string): boolean {
    return (this.mesh.catalog.agent(agent)?.instances ?? []).some((i) => declaresTasksExtension(i.meta["mcp_capabilities"] ?? "{}"));
  }

  /** The agent and tool a name offered in this view stands for, or undefined. Looks only at the one agent's tools. */
  resolve(view: View, name: string): { agent: string; tool: string } | undefined {
    if (view.kind === "agent")
      return this.agentTools(view.agent).some((t) => t.name === name) ? { agent: view.agent, tool: name } : undefined;
    const target = parseGatewayToolName(name);
    if (!target || gatewayToolName(target.agent, target.tool) !== name) return undefined;
    return this.agentTools(target.agent).some((t) => t.name === target.tool) ? target : undefined;
  }

  /** A view's tools for the current caller, or all of them (`all`: what list changes are computed from). */
  private offered(view: View, all = false): Tool[] {
    if (view.kind === "agent") return all ? this.agentTools(view.agent) : this.permittedTools(view.agent);
    if (view.kind === "dynamic") return DYNAMIC_TOOLS;
    return this.tools(all);
  }

  private async dispatch(
    view: View,
    params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> },
    ctx: ServerContext,
    relay: Relay,
    session: LegacySession | undefined,
    rawArguments?: () => string | undefined,
  ): Promise<CallToolResult | InputRequiredResult> {
    // The same limits as the agents', before anything is parsed further or forwarded.
    const problem = argumentProblem(params.arguments);
    if (problem) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Invalid arguments for ${params.name}: ${problem}.`);
    if (view.kind === "dynamic") {
      return this.search.handle(params.name, params.arguments ?? {}, (name, args) => {
        const target = this.resolve({ kind: "mesh" }, name);
        if (!target) return Promise.resolve(unknownToolResult(name, "search_tools finds the tools available now"));
        this.guard.authorize(target, params._meta);
        this.guard.admit(target, params._meta);
        return forwardCall(this, target, { arguments: args, ...(params._meta ? { _meta: params._meta } : {}) }, ctx, {
          pool: relay.get(),
          session,
        });
      });
    }
    const target = this.resolve(view, params.name);
    if (!target) throw unknownToolRefusal(view, params.name, () => this.offered(view).map((t) => t.name));
    this.guard.authorize(target, params._meta);
    this.guard.admit(target, params._meta);
    // The arguments go on exactly as the client wrote them (only the name and _meta change).
    const raw = rawArguments?.();
    const result = await forwardCall(this, target, params, ctx, {
      pool: relay.get(),
      session,
      ...(raw !== undefined ? { rawArguments: raw } : {}),
    });
    return withMeshTaskId(view, target.agent, result);
  }

  private listing(view: View): Listing {
    const tools = this.offered(view, true)
      .map((t) => `${t.name}:${JSON.stringify(t.inputSchema)}`)
      .join("|");
    // Resources and prompts are fetched from the agents on demand: they can change when
    // the set of agents with a healthy instance does.
    const agents = view.kind === "agent" ? String(this.hasAgent(view.agent)) : this.healthyAgents().join(",");
    return { tools, agents };
  }
}

/** The connections of a call that needs none of its own: the gateway's shared 2026-07-28 ones. */
const NO_RELAY: Relay = { get: () => undefined, close: () => undefined };

/** logging/setLevel on a view's server: the level is kept for the session and set on its own upstream sessions. */
function installLogLevel(server: Server, relay: Relay, set: (level: LoggingLevel) => void): void {
  server.setRequestHandler("logging/setLevel", async (req) => {
    set(req.params.level);
    await relay.get()?.each(async (c) => (c.getServerCapabilities()?.logging ? c.setLoggingLevel(req.params.level) : undefined));
    return {};
  });
}
