import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ServerOptions } from "@modelcontextprotocol/sdk/server/index.js";
import type { CallToolResult, Implementation } from "@modelcontextprotocol/sdk/types.js";
import { currentMeshContext } from "../context/meshContext.ts";
import { asRefusal, refusalResult } from "./callRefusal.ts";
import type { IdempotencyLedger } from "./idempotency.ts";

/** What the kit adds around every tool handler of a server (set once the agent runs). */
export interface CallHooks {
  /** Runs calls that carry an idempotency key at most once per key. */
  idempotency?: IdempotencyLedger;
}

const hooksOf = new WeakMap<McpServer, CallHooks>();

/** Installs the kit's hooks on a server built with createMcpServer. */
export function setCallHooks(server: McpServer, hooks: CallHooks): void {
  hooksOf.set(server, hooks);
}

/**
 * An McpServer with what every mesh agent offers besides its tools: the logging capability
 * (clients may set the level; agents may send log messages), and every tool handler run
 * inside the kit's call hooks: a call with an idempotency key runs at most once per key (the
 * claim held until the handler has really finished, whatever the caller's deadline did),
 * and a refusal or a mesh failure inside a handler (Consul unreachable, another agent down)
 * is answered as a JSON-RPC error, not dressed up as a business result. Capabilities can only
 * be declared at construction, so agents build their server with this.
 */
export function createMcpServer(info: Implementation, options: ServerOptions = {}): McpServer {
  const server = new McpServer(info, { ...options, capabilities: { logging: {}, ...options.capabilities } });
  const register = server.registerTool.bind(server) as (name: string, config: unknown, cb: ToolCallback) => unknown;
  server.registerTool = ((name: string, config: unknown, cb: ToolCallback) =>
    register(name, config, hookedHandler(server, name, cb))) as unknown as typeof server.registerTool;
  return server;
}

/** A tool handler as the SDK calls it: (args, extra) with an input schema, (extra) without. */
type ToolCallback = (...params: unknown[]) => CallToolResult | Promise<CallToolResult>;

function hookedHandler(server: McpServer, tool: string, cb: ToolCallback): ToolCallback {
  return async (...params) => {
    const args = params.length > 1 ? params[0] : {};
    const run = async () => cb(...params);
    try {
      const ctx = currentMeshContext();
      const ledger = hooksOf.get(server)?.idempotency;
      if (ledger && ctx?.idempotencyKey)
        return await ledger.run(ctx.idempotencyKey, { tool, args, deadline: ctx.deadline, traceId: ctx.traceId }, run);
      return await run();
    } catch (e) {
      const refusal = asRefusal(e);
      if (refusal) return refusalResult(refusal);
      throw e;
    }
  };
}
