import type { Vocabulary } from "./vocabulary.ts";
import type { CacheHint, McpServer, ServerCapabilities, ServerContext } from "@modelcontextprotocol/server";
import type { ToolSpec } from "./tools.ts";
import type { Logger } from "../logger.ts";
import type { ConsulClient } from "../consul/client.ts";
import type { SharedState } from "../state/sharedState.ts";
import type { MeshCaller } from "../client/meshCaller.ts";
import type { IdentityKeyFor } from "../http/identity.ts";
import type { TokenFor } from "../client/tokens.ts";
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
  /**
   * Tells this agent's clients that something changed: 2025-era sessions get the
   * list_changed notification, 2026-07-28 clients get it on their subscriptions/listen
   * streams. (Resource updates reach 2026-07-28 listeners; a 2025-era session's
   * subscription is the agent's to answer on its own server.)
   */
  readonly notify: {
    toolsChanged(): void;
    promptsChanged(): void;
    resourcesChanged(): void;
    resourceUpdated(uri: string): void;
  };
  /**
   * Adds a tool while the agent runs: its tool list, its tools hash in Consul (callers
   * refresh their catalog) and list_changed to its clients follow.
   */
  addTool(spec: ToolSpec): void;
  /**
   * The credential this agent sends to another agent (its kind's, derived from the mesh token
   * the agent was given, or MESH_TOKEN_<AGENT>): for a MeshClient of the agent's own.
   */
  readonly tokenFor?: TokenFor;
  /** The keys its onward calls sign the caller's identity with (identity.ts), from the same tokens: for a MeshClient of the agent's own. */
  readonly identityKeys?: IdentityKeyFor;
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
  /** Builds what every server instance of this process shares: domain state, data, clients. */
  createDeps(runtime: AgentRuntime): Deps | Promise<Deps>;
  /**
   * The agent's tools: built once per process (their schemas are compiled once), answered
   * by every server instance the kit builds (one per 2026-07-28 request, one per 2025-11-25
   * session), each call through the kit's call pipeline.
   */
  tools(deps: Deps): readonly ToolSpec[];
  /** What clients read about how to use the agent (MCP instructions). Default: the description. */
  readonly instructions?: string;
  /** Capabilities beyond tools and logging, e.g. `{ resources: { subscribe: true } }` for what `extend` adds. */
  readonly capabilities?: ServerCapabilities;
  /**
   * Registers resources, prompts and completions on one server instance (called per
   * instance, so keep it cheap: build schemas and data in createDeps).
   */
  extend?(server: McpServer, deps: Deps): void;
  /**
   * The names this agent's data gives meaning to (employees, departments, documents), published
   * as the resource toolmesh://<agent>/vocabulary for planners (the orchestrator's).
   */
  vocabulary?(deps: Deps): Vocabulary;
  /**
   * How long clients may cache list results (2026-07-28 `ttlMs`/`cacheScope`).
   * Default: tools/list and server/discover 60 s, public (the same for every caller).
   */
  readonly cacheHints?: Partial<
    Record<"tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" | "resources/read" | "server/discover", CacheHint>
  >;
  /**
   * Verifies the `requestState` a client echoes on a multi-round-trip retry (2026-07-28),
   * before the handler runs: throw to refuse it. See createRequestStateCodec in the SDK.
   */
  readonly requestState?: { verify: (state: string, ctx: ServerContext) => unknown };
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
