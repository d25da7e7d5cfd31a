import type { McpEndpoint } from "../mcp/endpoint.ts";
import { MeshError } from "../protocol/errors.ts";
import type { AgentRuntime } from "./definition.ts";
import type { Registrar } from "./registrar.ts";
import { LiveServers } from "./server.ts";
import type { ToolRegistry, ToolSpec } from "./tools.ts";
import { hashTools } from "./toolsHash.ts";

/**
 * What an agent's runtime reaches of the agent serving it: change notifications (to the
 * endpoint's listen streams and the live servers) and tools added while it runs. Made before
 * the definition's deps, which hold the runtime; the registry, the endpoint and the registrar
 * attach as the agent comes up, and each hook reaches what is there at the time.
 */
export class AgentHooks {
  /** Servers of 2025-era sessions and stdio connections; 2026-07-28 HTTP clients listen on the endpoint. */
  readonly live = new LiveServers();
  registry: ToolRegistry | undefined;
  endpoint: McpEndpoint | undefined;
  registrar: Registrar | undefined;

  readonly notify: AgentRuntime["notify"] = {
    toolsChanged: () => {
      this.endpoint?.notify.toolsChanged();
      this.live.each((s) => s.sendToolListChanged());
    },
    promptsChanged: () => {
      this.endpoint?.notify.promptsChanged();
      this.live.each((s) => s.sendPromptListChanged());
    },
    resourcesChanged: () => {
      this.endpoint?.notify.resourcesChanged();
      this.live.each((s) => s.sendResourceListChanged());
    },
    resourceUpdated: (uri) => {
      this.endpoint?.notify.resourceUpdated(uri);
      this.live.resourceUpdated(uri);
    },
  };

  /** AgentRuntime.addTool: the tool joins the registry, the tools hash in Consul follows, clients are told. */
  readonly addTool = (spec: ToolSpec): void => {
    const registry = this.registry;
    if (!registry) throw new MeshError("CONFIG_INVALID", "addTool is for tools added while the agent runs; list the others in tools().");
    registry.add(spec);
    void this.registrar?.updateMeta({ tools_hash: hashTools(registry.listing), tools_count: String(registry.size) });
    this.notify.toolsChanged();
  };
}
