import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { MeshClient } from "../client/meshClient.ts";
import { childContext, fromMeta, META_PREFIX, rootContext, type MeshContext } from "../context/meshContext.ts";
import { describeError, isMeshError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
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
  idleTimeoutMs?: number;
  maxCallMs?: number;
  logger?: Logger;
}

/**
 * The whole mesh as one MCP server: every tool of every agent with a healthy instance,
 * named `agent__tool`, kept live (clients get tools/list_changed when the catalog
 * changes), each call forwarded through discovery with a MeshContext (the client's trace
 * continued, the gateway in the caller chain), progress and cancellation relayed.
 */
export class Gateway {
  private readonly mesh: MeshClient;
  private readonly visible: (agent: string, tool: string) => boolean;
  private readonly idleTimeoutMs: number;
  private readonly maxCallMs: number;
  private readonly logger: Logger;
  private readonly servers = new Set<Server>();
  private lastListing = "";
  private pending: NodeJS.Timeout | undefined;

  constructor(options: GatewayOptions) {
    this.mesh = options.mesh;
    this.visible = toolFilter(options.include ?? [], options.exclude ?? []);
    this.idleTimeoutMs = options.idleTimeoutMs ?? GATEWAY_IDLE_TIMEOUT_MS;
    this.maxCallMs = options.maxCallMs ?? GATEWAY_MAX_CALL_MS;
    this.logger = (options.logger ?? silentLogger).child({ component: "gateway" });
    this.lastListing = this.listingKey();
    this.mesh.catalog.on("change", () => this.scheduleListChanged());
  }

  /** Tools offered now: healthy agents only, filtered, namespaced. */
  tools(): Tool[] {
    const out: Tool[] = [];
    for (const agent of this.mesh.catalog.agents()) {
      if (agent.instances.length === 0) continue; // every replica down: not offered as if healthy
      for (const tool of agent.tools) {
        if (!this.visible(agent.name, tool.name)) continue;
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

  /** A fresh low-level MCP server for one client session. */
  createServer(): Server {
    const server = new Server(
      { name: "toolmesh-gateway", title: "toolmesh gateway", version: "0.1.0" },
      {
        capabilities: { tools: { listChanged: true }, logging: {} },
        instructions: "Every agent of the toolmesh mesh, as tools named <agent>__<tool>. The list changes as agents come and go.",
      },
    );
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: this.tools() }));
    server.setRequestHandler(CallToolRequestSchema, (request, extra) => this.call(request.params, extra));
    this.servers.add(server);
    server.onclose = () => this.servers.delete(server);
    return server;
  }

  private async call(
    params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> },
    extra: { signal: AbortSignal; sendNotification: Server["notification"] },
  ): Promise<CallToolResult> {
    const target = parseGatewayToolName(params.name);
    if (!target || !this.tools().some((t) => t.name === params.name)) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `Unknown tool "${params.name}". The gateway's tools are named <agent>__<tool>; list tools to see those available now.`,
      );
    }
    const meta = params._meta ?? {};
    const progressToken = meta["progressToken"] as string | number | undefined;
    let context: MeshContext;
    try {
      context = this.contextFor(meta, target.agent);
    } catch (e) {
      return errorResult(e);
    }
    try {
      const { result } = await this.mesh.call(target.agent, target.tool, params.arguments ?? {}, {
        context,
        signal: extra.signal,
        timeoutMs: this.maxCallMs,
        idleTimeoutMs: this.idleTimeoutMs,
        ...(progressToken !== undefined
          ? { onProgress: (p) => void extra.sendNotification({ method: "notifications/progress", params: { progressToken, ...p } }) }
          : {}),
      });
      return result;
    } catch (e) {
      if (extra.signal.aborted) throw e; // the client cancelled: it expects no answer
      this.logger.warn({ tool: params.name, traceId: context.traceId, err: describeError(e) }, "call through the gateway failed");
      return errorResult(e);
    }
  }

  /** The client's context continued (gateway appended), or a new one continuing its traceparent. */
  private contextFor(meta: Record<string, unknown>, agent: string): MeshContext {
    const incoming = fromMeta(meta);
    const fromMesh = Object.keys(meta).some((k) => k.startsWith(META_PREFIX));
    if (incoming && fromMesh) return childContext(incoming, "gateway", agent);
    return rootContext({ caller: "gateway", ...(typeof meta["traceparent"] === "string" ? { traceparent: meta["traceparent"] } : {}) });
  }

  private scheduleListChanged(): void {
    clearTimeout(this.pending);
    // Coalesce bursts (an agent's instances and tools often change together).
    this.pending = setTimeout(() => {
      const key = this.listingKey();
      if (key === this.lastListing) return;
      this.lastListing = key;
      this.logger.info({ tools: this.tools().length, sessions: this.servers.size }, "tool list changed; notifying clients");
      for (const s of this.servers) void s.sendToolListChanged().catch(() => undefined);
    }, 50);
  }

  private listingKey(): string {
    return this.tools()
      .map((t) => `${t.name}:${JSON.stringify(t.inputSchema)}`)
      .sort()
      .join("|");
  }

  close(): void {
    clearTimeout(this.pending);
    this.servers.clear();
  }
}

function errorResult(e: unknown): CallToolResult {
  const code = isMeshError(e) ? ` (${e.code})` : "";
  return { isError: true, content: [{ type: "text", text: `toolmesh${code}: ${describeError(e)}` }] };
}
