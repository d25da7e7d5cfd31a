import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ServerOptions } from "@modelcontextprotocol/sdk/server/index.js";
import type { Implementation } from "@modelcontextprotocol/sdk/types.js";

/**
 * An McpServer with what every mesh agent offers besides its tools: the logging capability
 * (clients may set the level; agents may send log messages). Capabilities can only be
 * declared at construction, so agents build their server with this.
 */
export function createMcpServer(info: Implementation, options: ServerOptions = {}): McpServer {
  return new McpServer(info, { ...options, capabilities: { logging: {}, ...options.capabilities } });
}
