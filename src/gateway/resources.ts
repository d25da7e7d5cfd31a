import {
  ProtocolError,
  ProtocolErrorCode,
  type CompleteResult,
  type Prompt,
  type Resource,
  type ResourceTemplateType,
  type Server,
  type ServerContext,
} from "@modelcontextprotocol/server";
import type { Client } from "@modelcontextprotocol/client";
import type { MeshClient } from "../client/meshClient.ts";
import type { ClientPool } from "../client/pool.ts";
import { META_PREFIX } from "../protocol/keys.ts";
import { describeError } from "../protocol/errors.ts";
import type { Logger } from "../logger.ts";
import type { ResourceSubscriptions } from "./subscriptions.ts";
import { gatewayToolName, parseGatewayToolName } from "./toolNames.ts";

/** JSON-RPC error the MCP spec gives for an unknown resource. */
export const RESOURCE_NOT_FOUND = -32_002;

export interface AggregationOptions {
  mesh: MeshClient;
  /** The agents this session presents (all healthy ones, or the passthrough's one). */
  agents: () => string[];
  /** Namespace prompt names as agent__prompt (the whole-mesh view). */
  prefix: boolean;
  /** The session's own connections, if it relays server-to-client messages (log messages). */
  pool: () => ClientPool | undefined;
  /** The gateway's upstream resource subscriptions (a 2025-era session's subscribe joins them). */
  subscriptions: ResourceSubscriptions;
  /** Which agent serves which URI. */
  index: ResourceIndex;
  /** Sends prompts/get or resources/read on to an agent (input requests relayed, errors as the agent sent them). */
  forward: <R>(
    agent: string,
    request: { method: "prompts/get" | "resources/read"; params: Record<string, unknown> },
    ctx: ServerContext,
  ) => Promise<R>;
  logger: Logger;
}

const AGENT_KEY = `${META_PREFIX}agent`;

/**
 * Resources and prompts of the agents, aggregated: listings fan out to one healthy
 * instance of each agent (an agent that fails is left out and logged, never fatal);
 * resources keep their URIs (tagged with their agent in _meta) and reads go to the agent
 * that listed the URI or whose template matches it; prompts are named like tools.
 */
/**
 * Which agent serves which resource URI, learnt from the agents' listings (resources and
 * templates), shared by every session and request of the gateway.
 */
export class ResourceIndex {
  private readonly owners = new Map<string, string>();
  private templates: { agent: string; uriTemplate: string; pattern: RegExp }[] = [];

  private readonly mesh: MeshClient;
  private readonly logger: Logger;

  constructor(mesh: MeshClient, logger: Logger) {
    this.mesh = mesh;
    this.logger = logger;
  }

  /** Lists `what` of each agent (one healthy instance each); an agent that fails is left out and logged. */
  async fanOut<T>(
    what: string,
    agents: readonly string[],
    fn: (agent: string, client: Client) => Promise<T[]>,
    pool?: ClientPool,
  ): Promise<T[]> {
    const lists = await Promise.all(
      agents.map((agent) =>
        this.mesh
          .withAgent(agent, (c) => fn(agent, c), pool ? { pool } : {})
          .catch((e: unknown) => {
            this.logger.warn({ agent, err: describeError(e) }, `cannot list ${what}; leaving this agent out`);
            return [] as T[];
          }),
      ),
    );
    return lists.flat();
  }

  async listResources(agents: readonly string[], pool?: ClientPool): Promise<Resource[]> {
    const resources = await this.fanOut(
      "resources",
      agents,
      async (agent, c) =>
        c.getServerCapabilities()?.resources
          ? (await c.listResources()).resources.map((r) => ({ ...r, _meta: { ...r._meta, [AGENT_KEY]: agent } }))
          : [],
      pool,
    );
    for (const agent of agents) for (const [uri, owner] of this.owners) if (owner === agent) this.owners.delete(uri);
    for (const r of resources) this.owners.set(r.uri, r._meta[AGENT_KEY] as string);
    return resources;
  }

  async listTemplates(agents: readonly string[], pool?: ClientPool): Promise<ResourceTemplateType[]> {
    const list = await this.fanOut(
      "resource templates",
      agents,
      async (agent, c) =>
        c.getServerCapabilities()?.resources
          ? (await c.listResourceTemplates()).resourceTemplates.map((t) => ({ ...t, _meta: { ...t._meta, [AGENT_KEY]: agent } }))
          : [],
      pool,
    );
    this.templates = [
      ...this.templates.filter((t) => !agents.includes(t.agent)),
      ...list.map((t) => ({ agent: t._meta[AGENT_KEY] as string, uriTemplate: t.uriTemplate, pattern: templatePattern(t.uriTemplate) })),
    ];
    return list;
  }

  /** The agent (of `agents`) known to serve a URI, or undefined. */
  ownerOf(uri: string, agents: readonly string[]): string | undefined {
    const listed = this.owners.get(uri);
    if (listed && agents.includes(listed)) return listed;
    return this.templates.find((t) => agents.includes(t.agent) && t.pattern.test(uri))?.agent;
  }

  /** The agent template `uriTemplate` belongs to. */
  templateOwner(uriTemplate: string, agents: readonly string[]): string | undefined {
    return this.templates.find((t) => t.uriTemplate === uriTemplate && agents.includes(t.agent))?.agent;
  }

  /** The agent serving a URI (listed, or matching one of its templates), listing again once if unknown. */
  async ownerFor(uri: string, agents: readonly string[]): Promise<string> {
    let owner = this.ownerOf(uri, agents);
    if (!owner) {
      await Promise.all([this.listResources(agents), this.listTemplates(agents)]);
      owner = this.ownerOf(uri, agents);
    }
    if (!owner) throw new ProtocolError(RESOURCE_NOT_FOUND, `Resource not found: no agent of the mesh lists "${uri}".`, { uri });
    return owner;
  }
}

/**
 * The resources, prompts and completions of a view's agents on one of its servers (the whole
 * mesh's prompts prefixed with their agent), as far as the server declares them. Returns how
 * to leave this session's resource subscriptions.
 */
export function installResourcesAndPrompts(server: Server, o: AggregationOptions): { close(): Promise<void> } {
  // Only what the server declares: a passthrough presents its agent as it is, so a method
  // the agent does not serve is -32601 there too (and the SDK refuses undeclared handlers).
  const declared = server.getCapabilities();
  if (declared.resources) installResourceReads(server, o);
  const subscribed = new Map<string, Promise<() => Promise<void>>>();
  if (declared.resources?.subscribe) installSubscriptions(server, o, subscribed);
  if (declared.prompts) installPrompts(server, o);
  if (declared.completions) installCompletions(server, o);
  return {
    close: async () => {
      const all = [...subscribed.values()];
      subscribed.clear();
      await Promise.allSettled(all.map(async (r) => (await r)()));
    },
  };
}

/** The agent serving a URI in this view: the passthrough sends every URI to its agent, which answers for its own resources. */
function ownerIn(o: AggregationOptions, uri: string): Promise<string> {
  return o.prefix ? o.index.ownerFor(uri, o.agents()) : Promise.resolve(o.agents()[0] ?? o.index.ownerFor(uri, []));
}

/** resources/list, resources/templates/list (all the view's agents'), resources/read (its owner's). */
function installResourceReads(server: Server, o: AggregationOptions): void {
  server.setRequestHandler("resources/list", async () => ({ resources: await o.index.listResources(o.agents(), o.pool()) }));
  server.setRequestHandler("resources/templates/list", async () => ({
    resourceTemplates: await o.index.listTemplates(o.agents(), o.pool()),
  }));
  server.setRequestHandler("resources/read", async (req, ctx) => {
    const owner = await ownerIn(o, req.params.uri);
    return o.forward(owner, { method: "resources/read", params: { uri: req.params.uri } }, ctx);
  });
}

/**
 * resources/subscribe and unsubscribe, for 2025-era sessions only (2026-07-28 clients name URIs
 * in subscriptions/listen instead): `subscribed` maps this session's URIs to how to leave the
 * gateway's shared upstream subscription.
 */
function installSubscriptions(server: Server, o: AggregationOptions, subscribed: Map<string, Promise<() => Promise<void>>>): void {
  server.setRequestHandler("resources/subscribe", async (req) => {
    const uri = req.params.uri;
    if (subscribed.has(uri)) return {};
    const owner = await ownerIn(o, uri);
    const release = o.subscriptions.acquire(uri, owner, (u) => void server.sendResourceUpdated({ uri: u }).catch(() => undefined));
    subscribed.set(uri, release);
    try {
      await release;
    } catch (e) {
      subscribed.delete(uri);
      throw e;
    }
    return {};
  });
  server.setRequestHandler("resources/unsubscribe", async (req) => {
    const release = subscribed.get(req.params.uri);
    subscribed.delete(req.params.uri);
    await (
      await release?.catch(() => undefined)
    )?.();
    return {};
  });
}

/** prompts/list (every agent's, prefixed through /mcp) and prompts/get (sent to its agent under its own name). */
function installPrompts(server: Server, o: AggregationOptions): void {
  server.setRequestHandler("prompts/list", async () => ({
    prompts: await o.index.fanOut<Prompt>(
      "prompts",
      o.agents(),
      async (agent, c) => {
        if (!c.getServerCapabilities()?.prompts) return [];
        const prompts = (await c.listPrompts()).prompts;
        if (!o.prefix) return prompts;
        return prompts.flatMap((p) => {
          const name = gatewayToolName(agent, p.name);
          return name ? [{ ...p, name, description: `[${agent}] ${p.description ?? ""}`.trim() }] : [];
        });
      },
      o.pool(),
    ),
  }));
  server.setRequestHandler("prompts/get", async (req, ctx) => {
    const target = promptTarget(o, req.params.name);
    return o.forward(
      target.agent,
      { method: "prompts/get", params: { name: target.tool, ...(req.params.arguments ? { arguments: req.params.arguments } : {}) } },
      ctx,
    );
  });
}

/** The agent and its own name for a prompt of this session's view. */
function promptTarget(o: AggregationOptions, name: string): { agent: string; tool: string } {
  const agents = o.agents();
  const target = o.prefix ? parseGatewayToolName(name) : agents[0] ? { agent: agents[0], tool: name } : undefined;
  if (!target || !agents.includes(target.agent)) {
    throw new ProtocolError(
      ProtocolErrorCode.InvalidParams,
      `Unknown prompt "${name}"${o.prefix ? ": the gateway's prompts are named <agent>__<prompt>" : ""}.`,
    );
  }
  return target;
}

/** completion/complete, sent to the agent of the prompt or resource template it completes. */
function installCompletions(server: Server, o: AggregationOptions): void {
  server.setRequestHandler("completion/complete", async (req): Promise<CompleteResult> => {
    const ref = req.params.ref;
    let agent: string | undefined;
    let forwarded = ref;
    if (ref.type === "ref/prompt") {
      const target = promptTarget(o, ref.name);
      agent = target.agent;
      forwarded = { ...ref, name: target.tool };
    } else {
      const owning = () => o.index.templateOwner(ref.uri, o.agents()) ?? o.index.ownerOf(ref.uri, o.agents());
      agent = owning();
      if (!agent) {
        await o.index.listTemplates(o.agents());
        agent = owning();
      }
    }
    // Nothing to suggest is a valid answer: an agent without completions, an unknown template.
    const none: CompleteResult = { completion: { values: [] } };
    if (!agent) return none;
    const pool = o.pool();
    return o.mesh.withAgent(
      agent,
      async (c) => (c.getServerCapabilities()?.completions ? c.complete({ ...req.params, ref: forwarded }) : none),
      pool ? { pool } : {},
    );
  });
}

/** A regular expression matching the URIs an RFC 6570 level-1 template expands to. */
function templatePattern(template: string): RegExp {
  const parts = template.split(/\{[^}]+\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join("[^/]+")}$`);
}
