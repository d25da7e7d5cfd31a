import type { Tool } from "@modelcontextprotocol/client";
import type { ConsulClient } from "../consul/client.ts";
import { describeError, MeshError } from "../protocol/errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { DEFAULT_TOOLS_TIMEOUT_MS, type CatalogInstance, type FetchTools } from "./catalog.ts";
import { instanceUrl } from "./instanceUrl.ts";

/** The environment variable naming the datacenters to fail over to, in order (comma-separated). */
export const FAILOVER_DCS_ENV = "MESH_FAILOVER_DCS";
/**
 * How long one answer about another datacenter (its instances and their tools, or that it has
 * none) is reused, so a caller failing over does not cross the WAN for every call. @default 2000
 */
export const FAILOVER_CACHE_MS = 2_000;
/** Longest wait for one datacenter's answer (through the local agent, over the WAN). @default 3000 */
export const FAILOVER_QUERY_TIMEOUT_MS = 3_000;

/** Consul datacenter names: letters, digits, '-' and '_'. */
const DATACENTER = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * The datacenters of MESH_FAILOVER_DCS, in order: "dc2,dc3". Empty or unset: no failover.
 * A name Consul would not accept is a configuration error that names it.
 */
export function parseFailoverDatacenters(raw: string | undefined): readonly string[] {
  if (raw === undefined || raw.trim() === "") return Object.freeze([]);
  const names = raw
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!DATACENTER.test(n)) {
      throw new MeshError(
        "CONFIG_INVALID",
        `${FAILOVER_DCS_ENV}: "${n}" is not a Consul datacenter name (expected letters, digits, '-' or '_', comma-separated, e.g. "dc2,dc3"); got "${raw}".`,
      );
    }
  }
  return Object.freeze([...new Set(names)]);
}

/** An agent found in another datacenter: its passing instances there and their tools. */
export interface RemoteAgent {
  datacenter: string;
  instances: CatalogInstance[];
  tools: Tool[];
}

/** What asking the failover datacenters found: the first that has the agent, and why the others did not help. */
export interface FailoverLookup {
  found: RemoteAgent | undefined;
  /** One line per datacenter asked before the one found (or all of them): "dc2: none passing". */
  tried: string[];
}

export interface DatacenterFailoverOptions {
  consul: ConsulClient;
  /** Asked in this order. */
  datacenters: readonly string[];
  /** How the remote instances' tool lists are fetched (they say which tools are read-only). */
  fetchTools: FetchTools;
  /** @default DEFAULT_TOOLS_TIMEOUT_MS */
  toolsTimeoutMs?: number;
  /** @default FAILOVER_CACHE_MS */
  cacheMs?: number;
  logger?: Logger;
}

/**
 * Finds an agent in other Consul datacenters when this one has no healthy instance of it:
 * Consul's `?dc=` on the health endpoint, answered through the local agent and the servers'
 * WAN links. Which calls may go there is the caller's rule (see {@link mayFailOver}): only
 * read-only ones, since Consul KV (idempotency claims, bookings, task records) is per
 * datacenter and a state-changing call run there could not be deduplicated against this one's.
 */
export class DatacenterFailover {
  readonly datacenters: readonly string[];
  private readonly consul: ConsulClient;
  private readonly fetchTools: FetchTools;
  private readonly toolsTimeoutMs: number;
  private readonly cacheMs: number;
  private readonly logger: Logger;
  private readonly cache = new Map<string, { at: number; lookup: Promise<FailoverLookup> }>();
  /** Tool lists by datacenter/agent/tools hash: fetched once per version of the agent. */
  private readonly tools = new Map<string, Tool[]>();

  constructor(options: DatacenterFailoverOptions) {
    this.consul = options.consul;
    this.datacenters = options.datacenters;
    this.fetchTools = options.fetchTools;
    this.toolsTimeoutMs = options.toolsTimeoutMs ?? DEFAULT_TOOLS_TIMEOUT_MS;
    this.cacheMs = options.cacheMs ?? FAILOVER_CACHE_MS;
    this.logger = (options.logger ?? silentLogger).child({ component: "dc-failover" });
  }

  /**
   * The first failover datacenter with a passing instance of `agent` (and its tools), in order.
   * One lookup serves every caller asking within the cache time, so it takes no caller's
   * signal (one caller's cancellation must not fail the others): each query has its own
   * bound, and callers race the lookup against their own deadline.
   */
  lookup(agent: string): Promise<FailoverLookup> {
    const cached = this.cache.get(agent);
    if (cached && Date.now() - cached.at < this.cacheMs) return cached.lookup;
    const lookup = this.ask(agent);
    this.cache.set(agent, { at: Date.now(), lookup });
    // A failed lookup is not kept.
    lookup.catch(() => this.cache.get(agent)?.lookup === lookup && this.cache.delete(agent));
    return lookup;
  }

  private async ask(agent: string): Promise<FailoverLookup> {
    const tried: string[] = [];
    for (const dc of this.datacenters) {
      let entries;
      try {
        entries = (
          await this.consul.healthService(agent, { passing: true, dc, timeoutMs: FAILOVER_QUERY_TIMEOUT_MS, retryMs: 0 })
        ).value.filter((e) => e.service === agent);
      } catch (e) {
        // Consul answers 500 "No path to datacenter" for an unknown or unreachable one: on to the
        // next at once (retryMs 0: the next caller, after the cache time, asks again).
        tried.push(`${dc}: ${describeError(e)}`);
        this.logger.warn({ agent, datacenter: dc, err: describeError(e) }, "failover datacenter did not answer");
        continue;
      }
      if (entries.length === 0) {
        tried.push(`${dc}: no passing instance`);
        continue;
      }
      const instances = entries.map((e) => ({ ...e, url: instanceUrl(e) })).sort((a, b) => a.id.localeCompare(b.id));
      const tools = await this.toolsOf(dc, agent, instances);
      if (!tools) {
        tried.push(`${dc}: ${instances.length} passing, none listed its tools`);
        continue;
      }
      this.logger.info({ agent, datacenter: dc, instances: instances.map((i) => i.id) }, "agent found in a failover datacenter");
      return { found: { datacenter: dc, instances, tools }, tried };
    }
    return { found: undefined, tried };
  }

  /** The tools of the remote instances (from the first that answers), cached by tools hash. */
  private async toolsOf(dc: string, agent: string, instances: CatalogInstance[]): Promise<Tool[] | undefined> {
    for (const instance of instances) {
      const key = `${dc}/${agent}/${instance.meta["tools_hash"] ?? instance.id}`;
      const known = this.tools.get(key);
      if (known) return known;
      try {
        const tools = await this.fetchTools(instance, AbortSignal.timeout(this.toolsTimeoutMs));
        this.tools.set(key, tools);
        return tools;
      } catch (e) {
        this.logger.warn(
          { agent, datacenter: dc, instance: instance.id, err: describeError(e) },
          "failover instance did not list its tools",
        );
      }
    }
    return undefined;
  }
}

/**
 * Whether a call may go to another datacenter: only when its tool says it is read-only
 * (`readOnlyHint`). Idempotent-but-writing tools do not qualify: their deduplication lives in
 * this datacenter's KV, which the other one does not see.
 */
export function mayFailOver(tools: readonly Tool[], tool: string): boolean {
  return tools.find((t) => t.name === tool)?.annotations?.readOnlyHint === true;
}
