import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CompleteRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type CompleteResult,
  type Prompt,
  type Resource,
  type ResourceTemplate,
} from "@modelcontextprotocol/sdk/types.js";
import type { MeshClient } from "../client/meshClient.ts";
import type { ClientPool } from "../client/pool.ts";
import { META_PREFIX } from "../context/meshContext.ts";
import { describeError } from "../protocol/errors.ts";
import type { Logger } from "../logger.ts";
import { gatewayToolName, parseGatewayToolName } from "./toolNames.ts";

/** JSON-RPC error the MCP spec gives for an unknown resource. */
export const RESOURCE_NOT_FOUND = -32_002;

export interface AggregationOptions {
  mesh: MeshClient;
  /** The agents this session presents (all healthy ones, or the passthrough's one). */
  agents: () => string[];
  /** Namespace prompt names as agent__prompt (the whole-mesh view). */
  prefix: boolean;
  /**
   * The session's own connections, if it relays server-to-client messages; `required`
   * opens them (a subscription's updates must come back to this session).
   */
  pool: (required?: boolean) => ClientPool | undefined;
  logger: Logger;
}

const AGENT_KEY = `${META_PREFIX}agent`;

/**
 * Resources and prompts of the agents, aggregated: listings fan out to one healthy
 * instance of each agent (an agent that fails is left out and logged, never fatal);
 * resources keep their URIs (tagged with their agent in _meta) and reads go to the agent
 * that listed the URI or whose template matches it; prompts are named like tools.
 */
export function installResourcesAndPrompts(server: Server, o: AggregationOptions): void {
  const owners = new Map<string, string>();
  let templates: { agent: string; uriTemplate: string; pattern: RegExp }[] = [];
  /** Subscribed URI → where the subscription lives (updates come from that instance). */
  const subscriptions = new Map<string, { agent: string; instance: string | undefined }>();

  const fanOut = async <T>(what: string, fn: (agent: string, client: Client) => Promise<T[]>): Promise<T[]> => {
    const pool = o.pool();
    const lists = await Promise.all(
      o.agents().map((agent) =>
        o.mesh
          .withAgent(agent, (c) => fn(agent, c), pool ? { pool } : {})
          .catch((e: unknown) => {
            o.logger.warn({ agent, err: describeError(e) }, `cannot list ${what}; leaving this agent out`);
            return [] as T[];
          }),
      ),
    );
    return lists.flat();
  };

  const listResources = async (): Promise<Resource[]> => {
    const resources = await fanOut("resources", async (agent, c) =>
      c.getServerCapabilities()?.resources
        ? (await c.listResources()).resources.map((r) => ({ ...r, _meta: { ...r._meta, [AGENT_KEY]: agent } }))
        : [],
    );
    owners.clear();
    for (const r of resources) owners.set(r.uri, r._meta[AGENT_KEY] as string);
    return resources;
  };

  const listTemplates = async (): Promise<ResourceTemplate[]> => {
    const list = await fanOut("resource templates", async (agent, c) =>
      c.getServerCapabilities()?.resources
        ? (await c.listResourceTemplates()).resourceTemplates.map((t) => ({ ...t, _meta: { ...t._meta, [AGENT_KEY]: agent } }))
        : [],
    );
    templates = list.map((t) => ({
      agent: t._meta[AGENT_KEY] as string,
      uriTemplate: t.uriTemplate,
      pattern: templatePattern(t.uriTemplate),
    }));
    return list;
  };

  const ownerOf = (uri: string) => owners.get(uri) ?? templates.find((t) => t.pattern.test(uri))?.agent;

  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: await listResources() }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates: await listTemplates() }));
  /** The agent serving a URI (listed, or matching one of its templates), listing again once if unknown. */
  const ownerFor = async (uri: string): Promise<string> => {
    let owner = ownerOf(uri);
    if (!owner) {
      await Promise.all([listResources(), listTemplates()]);
      owner = ownerOf(uri);
    }
    if (!owner) throw new McpError(RESOURCE_NOT_FOUND, `Resource not found: no agent of the mesh lists "${uri}".`);
    return owner;
  };

  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const owner = await ownerFor(req.params.uri);
    const pool = o.pool();
    return o.mesh.withAgent(owner, (c) => c.readResource({ uri: req.params.uri }), pool ? { pool } : {});
  });
  server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    const owner = await ownerFor(req.params.uri);
    const sub = { agent: owner, instance: undefined as string | undefined };
    await o.mesh.withAgent(owner, (c) => c.subscribeResource({ uri: req.params.uri }), {
      pool: o.pool(true)!,
      onInstance: (id) => (sub.instance = id),
    });
    subscriptions.set(req.params.uri, sub);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    const sub = subscriptions.get(req.params.uri);
    if (!sub) return {}; // never subscribed here: nothing to undo
    subscriptions.delete(req.params.uri);
    await o.mesh.withAgent(sub.agent, (c) => c.unsubscribeResource({ uri: req.params.uri }), {
      pool: o.pool(true)!,
      ...(sub.instance ? { prefer: sub.instance } : {}),
    });
    return {};
  });

  server.setRequestHandler(ListPromptsRequestSchema, async () => ({
    prompts: await fanOut<Prompt>("prompts", async (agent, c) => {
      if (!c.getServerCapabilities()?.prompts) return [];
      const prompts = (await c.listPrompts()).prompts;
      if (!o.prefix) return prompts;
      return prompts.flatMap((p) => {
        const name = gatewayToolName(agent, p.name);
        return name ? [{ ...p, name, description: `[${agent}] ${p.description ?? ""}`.trim() }] : [];
      });
    }),
  }));
  /** The agent and its own name for a prompt of this session's view. */
  const promptTarget = (name: string): { agent: string; tool: string } => {
    const agents = o.agents();
    const target = o.prefix ? parseGatewayToolName(name) : agents[0] ? { agent: agents[0], tool: name } : undefined;
    if (!target || !agents.includes(target.agent)) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `Unknown prompt "${name}"${o.prefix ? ": the gateway's prompts are named <agent>__<prompt>" : ""}.`,
      );
    }
    return target;
  };

  server.setRequestHandler(CompleteRequestSchema, async (req): Promise<CompleteResult> => {
    const ref = req.params.ref;
    let agent: string | undefined;
    let forwarded = ref;
    if (ref.type === "ref/prompt") {
      const target = promptTarget(ref.name);
      agent = target.agent;
      forwarded = { ...ref, name: target.tool };
    } else {
      const owning = () => templates.find((t) => t.uriTemplate === ref.uri)?.agent ?? ownerOf(ref.uri);
      agent = owning();
      if (!agent) {
        await listTemplates();
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

  server.setRequestHandler(GetPromptRequestSchema, async (req) => {
    const target = promptTarget(req.params.name);
    const pool = o.pool();
    return o.mesh.withAgent(
      target.agent,
      (c) => c.getPrompt({ name: target.tool, ...(req.params.arguments ? { arguments: req.params.arguments } : {}) }),
      pool ? { pool } : {},
    );
  });
}

/** A regular expression matching the URIs an RFC 6570 level-1 template expands to. */
function templatePattern(template: string): RegExp {
  const parts = template.split(/\{[^}]+\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join("[^/]+")}$`);
}
