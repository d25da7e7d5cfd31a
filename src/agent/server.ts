import { McpServer, type ServerCapabilities } from "@modelcontextprotocol/server";
import { answersServerRequests, fastRequestContext, type FastToolCalls } from "../mcp/fastCalls.ts";
import type { Logger } from "../logger.ts";
import { MemoryState } from "../state/sharedState.ts";
import type { AgentDefinition } from "./definition.ts";
import { IdempotencyLedger } from "./idempotency.ts";
import { callTool, installTools, type CallPipelineOptions } from "./pipeline.ts";
import { ToolRegistry } from "./tools.ts";
import { registerVocabulary } from "./vocabulary.ts";
import { installTasks } from "./taskMethods.ts";
import { TaskEngine } from "./taskEngine.ts";
import { TASKS_EXTENSION } from "../protocol/keys.ts";

/** How long clients may cache an agent's tool list and discover result. @default 60000 */
export const DEFAULT_LIST_TTL_MS = 60_000;

/**
 * The server instances of an agent that outlive one request: a 2025-11-25 session's, a
 * stdio connection's. Change notifications reach them through here (2026-07-28 HTTP
 * clients get theirs on their listen streams), and a 2025-era session's resource
 * subscriptions are kept here, so `runtime.notify.resourceUpdated(uri)` reaches the
 * sessions that subscribed to `uri`.
 */
export class LiveServers {
  private readonly servers = new Map<McpServer, { era: "modern" | "legacy"; subscribed: Set<string> }>();

  /** Tracks `server` until it closes; on a 2025-era one, answers resources/subscribe and unsubscribe. */
  add(server: McpServer, era: "modern" | "legacy", subscribe: boolean): void {
    const entry = { era, subscribed: new Set<string>() };
    this.servers.set(server, entry);
    if (subscribe && era === "legacy") {
      server.server.setRequestHandler("resources/subscribe", (req) => {
        entry.subscribed.add(req.params.uri);
        return {};
      });
      server.server.setRequestHandler("resources/unsubscribe", (req) => {
        entry.subscribed.delete(req.params.uri);
        return {};
      });
    }
    const previous = server.server.onclose;
    server.server.onclose = () => {
      this.servers.delete(server);
      previous?.();
    };
  }

  get size(): number {
    return this.servers.size;
  }

  /** Runs `fn` on every live server; a failure (a client gone) is ignored. */
  each(fn: (server: McpServer) => Promise<unknown> | void): void {
    for (const server of this.servers.keys()) void Promise.resolve(fn(server)).catch(() => undefined);
  }

  /** Tells the live servers whose client wants it that `uri` changed (a 2026-07-28 stdio client filters by its listen stream). */
  resourceUpdated(uri: string): void {
    for (const [server, entry] of this.servers)
      if (entry.era === "modern" || entry.subscribed.has(uri)) void server.server.sendResourceUpdated({ uri }).catch(() => undefined);
  }
}

export interface AgentServerParts<D> {
  def: AgentDefinition<D>;
  deps: D;
  /** The agent's tools; built from `def.tools(deps)` when omitted. */
  registry?: ToolRegistry;
  /** Idempotency records; kept in memory for this process when omitted. */
  ledger?: IdempotencyLedger;
  /** Task records (shared state for a registered agent); kept in memory when omitted. */
  tasks?: TaskEngine;
  /** Where servers that outlive one request are tracked (for notifications). */
  live?: LiveServers;
  /** This instance's id (named in hop reports). */
  instance?: () => string;
  logger: Logger;
}

/**
 * Returns a factory of MCP servers for one agent. The tools are built once; every server
 * it makes (one per 2026-07-28 request, one per 2025-11-25 session or stdio connection,
 * one per in-memory test pair) answers from the same registry, pipeline and ledger.
 */
export function agentServerFactory<D>(parts: AgentServerParts<D>): (era?: "modern" | "legacy", lasting?: boolean) => McpServer {
  return agentServing(parts).serverFor;
}

/**
 * How an agent is served: `serverFor` builds a server instance (per 2026-07-28 request that
 * needs one, per 2025-11-25 session, per stdio connection); `fastToolCalls` answers plain
 * 2026-07-28 tool calls through the same pipeline without building one (construction off
 * the hot path). An agent with a requestState codec takes the SDK's path for every call.
 * `advertised` is what its servers advertise (server/discover), for the Consul meta.
 */
export function agentServing<D>(parts: AgentServerParts<D>): {
  serverFor: (era?: "modern" | "legacy", lasting?: boolean) => McpServer;
  fastToolCalls: FastToolCalls | undefined;
  advertised: () => ServerCapabilities;
} {
  const { def, deps, logger } = parts;
  const registry = parts.registry ?? new ToolRegistry(def.tools(deps));
  const ledger = parts.ledger ?? new IdempotencyLedger({ agent: def.name, instance: () => "local", state: new MemoryState(), logger });
  const tasks = registry.hasTasks
    ? (parts.tasks ?? new TaskEngine({ state: new MemoryState(), instance: () => "local", logger }))
    : undefined;
  const pipeline = {
    agent: def.name,
    registry,
    ledger,
    logger,
    ...(tasks ? { tasks } : {}),
    ...(parts.instance ? { instance: parts.instance } : {}),
  };
  const capabilities = {
    logging: {},
    ...(def.vocabulary ? { resources: {} } : {}),
    ...(tasks ? { extensions: { [TASKS_EXTENSION]: {} } } : {}),
    ...def.capabilities,
  };
  const vocabulary = def.vocabulary ? once(() => def.vocabulary!(deps)) : undefined;
  const subscribe = Boolean(capabilities.resources?.subscribe);
  const serverInfo = { name: `toolmesh-${def.name}`, version: def.version };
  // `lasting`: the server serves a session or a stdio connection, not one request.
  const serverFor = (era: "modern" | "legacy" = "legacy", lasting = era === "legacy"): McpServer => {
    const server = new McpServer(serverInfo, {
      capabilities,
      instructions: def.instructions ?? def.description,
      ...(def.requestState ? { requestState: def.requestState } : {}),
      cacheHints: def.cacheHints ?? {
        "tools/list": { ttlMs: DEFAULT_LIST_TTL_MS, cacheScope: "public" },
        "server/discover": { ttlMs: DEFAULT_LIST_TTL_MS, cacheScope: "public" },
      },
    });
    installTools(server, pipeline);
    if (tasks) installTasks(server, tasks);
    def.extend?.(server, deps);
    if (vocabulary) registerVocabulary(server, def.name, vocabulary);
    if (lasting) parts.live?.add(server, era, subscribe);
    return server;
  };
  const fastToolCalls = fastCallsOf(def, pipeline, serverInfo);
  // What the agent's servers advertise, read off one: the SDK adds what its registrations
  // imply (resources for the vocabulary, prompts or completions an extension registers), so
  // the capabilities published in Consul are exactly those a server/discover answers.
  const advertised = () => serverFor("modern", false).server.getCapabilities();
  return { serverFor, fastToolCalls, advertised };
}

/**
 * Plain tool calls answered through the agent's pipeline without a server instance; none for
 * an agent with a requestState codec (the SDK's path serves every call of such an agent).
 */
function fastCallsOf<D>(
  def: AgentDefinition<D>,
  pipeline: CallPipelineOptions,
  serverInfo: { name: string; version: string },
): FastToolCalls | undefined {
  if (def.requestState) return undefined;
  const plainTools = plainToolsOf(pipeline.registry);
  return {
    serverInfo,
    // On a 2025 session whose client can answer server requests, a tool asking for input
    // needs the SDK's shim to push them: that session's calls take the SDK's path.
    accepts: (tool, session) => plainTools().has(tool) && !(session && answersServerRequests(session)),
    call: (request, signal) => callTool(pipeline, request.params, fastRequestContext(request, signal)),
  };
}

/**
 * Tools the fast path may run: all but those whose arguments travel in Mcp-Param headers (the
 * SDK checks those); worked out again when the registry's listing changes.
 */
function plainToolsOf(registry: ToolRegistry): () => Set<string> {
  let plain: { listing: readonly unknown[]; names: Set<string> } = { listing: [], names: new Set() };
  return () => {
    if (plain.listing !== registry.listing) {
      plain = {
        listing: registry.listing,
        names: new Set(registry.listing.filter((t) => !JSON.stringify(t.inputSchema).includes('"x-mcp-header"')).map((t) => t.name)),
      };
    }
    return plain.names;
  };
}

/** A value computed on first use, then kept. */
function once<T>(make: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: make() }).v;
}
