import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Logger } from "../logger.ts";
import type { ConsulClient } from "../consul/client.ts";
import type { SharedState } from "../state/sharedState.ts";
import type { MeshCaller } from "../client/meshCaller.ts";
import { MeshError } from "../protocol/errors.ts";

/** What the kit hands an agent when it builds the agent's shared dependencies. */
export interface AgentRuntime {
  readonly logger: Logger;
  /** Absent when the agent runs without Consul (stdio without a reachable Consul). */
  readonly consul: ConsulClient | undefined;
  /** Shared, consistent state: Consul KV with CAS when registered, memory otherwise. */
  readonly state: SharedState;
  /** Calls tools of other agents, found through discovery. */
  readonly mesh: MeshCaller;
}

/**
 * A specialist agent, independent of any transport (STYLE.md rule 1): the kit serves it
 * on Streamable HTTP or stdio and registers it in Consul.
 */
export interface AgentDefinition<Deps = unknown> {
  /** Consul service name: lowercase letters, digits and dashes, e.g. "hr". */
  readonly name: string;
  /** Semver of the agent, published in Consul meta. */
  readonly version: string;
  /** One or two sentences: what this agent knows and does (Consul meta, MCP instructions). */
  readonly description: string;
  /**
   * The agent keeps per-session working state (in memory, backed by runtime.state): callers
   * then send all calls of one session (MeshContext.sessionId) to the same replica while it
   * is healthy. Published as Consul meta stateful=true.
   */
  readonly stateful?: boolean;
  /** Capability/intent words, registered as Consul tags beside "mcp". */
  readonly intents: readonly string[];
  /** Builds what every MCP session of this process shares: domain state, data, clients. */
  createDeps(runtime: AgentRuntime): Deps | Promise<Deps>;
  /** A fresh McpServer with this agent's tools; the kit calls it once per MCP session. */
  createServer(deps: Deps): McpServer;
  /** Releases what createDeps opened (watches, connections); called once on shutdown. */
  dispose?(deps: Deps): void | Promise<void>;
}

/** Consul service names double as DNS labels: keep them to that alphabet. */
export const AGENT_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/** Checks an agent definition once, at the boundary, with messages that say what to fix. */
export function defineAgent<Deps>(def: AgentDefinition<Deps>): AgentDefinition<Deps> {
  if (!AGENT_NAME_PATTERN.test(def.name)) {
    throw new MeshError(
      "CONFIG_INVALID",
      `Agent name "${def.name}" is invalid: expected lowercase letters, digits and dashes, starting with a letter (at most 63 characters), e.g. "hr".`,
    );
  }
  for (const intent of def.intents) {
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(intent)) {
      throw new MeshError(
        "CONFIG_INVALID",
        `Intent "${intent}" of agent "${def.name}" is invalid: expected a lowercase word (letters, digits, _ or -).`,
      );
    }
  }
  return Object.freeze({ ...def, intents: Object.freeze([...def.intents]) });
}
