import { EventEmitter } from "node:events";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import type { ConsulClient, ServiceEntry } from "../consul/client.ts";
import { instanceUrl } from "../client/instanceUrl.ts";
import type { ClientPool } from "../client/pool.ts";
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { agentTokenVariable } from "../agent/auth.ts";
import { describeError } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";

/** Tag that marks a Consul service as an MCP mesh member. */
export const MCP_TAG = "mcp";
/** Longest wait of one blocking query. @default "30s" */
export const WATCH_WAIT = "30s";
/** Backoff after a failed watch: doubles from the first to the last. @default [100, 5000] */
export const WATCH_BACKOFF_MS: readonly [number, number] = [100, 5_000];

export interface CatalogInstance extends ServiceEntry {
  /** The instance's MCP endpoint. */
  url: string;
}

export interface CatalogAgent {
  name: string;
  tags: string[];
  /** Passing instances only. */
  instances: CatalogInstance[];
  tools: Tool[];
  /** The tools hash the tool list was fetched for (toolmesh agents publish it in meta). */
  toolsHash: string | undefined;
  description: string | undefined;
  /** Last error fetching the tool list, if the last attempt failed. */
  toolsError: string | undefined;
}

export interface CatalogOptions {
  consul: ConsulClient;
  pool: ClientPool;
  logger?: Logger;
  /**
   * "all": watch every service tagged mcp (orchestrator, gateway, CLI).
   * "on-demand": watch a service from the first time it is asked for (agents calling agents).
   */
  mode: "all" | "on-demand";
}

export type CatalogEvent = { type: "agents" | "instances" | "tools"; agent?: string };

/**
 * The live, in-memory view of the mesh: agent → passing instances → tools. Kept current
 * with Consul blocking queries (a change reaches it as soon as Consul answers, typically
 * in milliseconds). While Consul is unreachable it keeps the last-known view, says so
 * once in the log, and retries with backoff. Emits "change" with a CatalogEvent.
 */
export class Catalog extends EventEmitter<{ change: [CatalogEvent] }> {
  private readonly consul: ConsulClient;
  private readonly pool: ClientPool;
  private readonly logger: Logger;
  private readonly mode: "all" | "on-demand";
  private readonly agentsByName = new Map<string, CatalogAgent>();
  private readonly watchers = new Map<string, { stop: AbortController; ready: Promise<void> }>();
  private readonly stopped = new AbortController();
  private servicesReady: Promise<void> | undefined;
  private consulError: string | undefined;
  private lastContact = 0;

  constructor(options: CatalogOptions) {
    super();
    this.consul = options.consul;
    this.pool = options.pool;
    this.logger = (options.logger ?? silentLogger).child({ component: "catalog" });
    this.mode = options.mode;
  }

  /** In "all" mode: resolves once the first view of the mesh (with tool lists) is loaded. */
  async start(): Promise<void> {
    if (this.mode !== "all") return;
    this.servicesReady ??= new Promise<void>((resolve) => void this.watchServices(resolve));
    await this.servicesReady;
    await Promise.all([...this.watchers.values()].map((w) => w.ready));
  }

  stop(): void {
    this.stopped.abort();
    for (const w of this.watchers.values()) w.stop.abort();
  }

  agents(): CatalogAgent[] {
    return [...this.agentsByName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  agent(name: string): CatalogAgent | undefined {
    return this.agentsByName.get(name);
  }

  /** Passing instances of an agent; in on-demand mode the first ask starts its watch. */
  async instances(name: string): Promise<CatalogInstance[]> {
    await this.ensureWatched(name);
    return this.agentsByName.get(name)?.instances ?? [];
  }

  /** The Consul error of the last failed watch, while it keeps failing. */
  get lastError(): string | undefined {
    return this.consulError;
  }

  /** When the catalog last heard from Consul (epoch ms; 0 never). */
  get lastContactAt(): number {
    return this.lastContact;
  }

  /** Fetches an agent's tool list again (an instance sent tools/list_changed). */
  async refreshTools(name: string): Promise<void> {
    const agent = this.agentsByName.get(name);
    if (agent) await this.loadTools(agent, true);
  }

  /** The agent an instance id belongs to. */
  agentOf(instanceId: string): string | undefined {
    for (const a of this.agentsByName.values()) if (a.instances.some((i) => i.id === instanceId)) return a.name;
    return undefined;
  }

  private ensureWatched(name: string): Promise<void> {
    const existing = this.watchers.get(name);
    if (existing) return existing.ready;
    const stop = new AbortController();
    const ready = new Promise<void>((resolve) => void this.watchService(name, stop.signal, resolve));
    this.watchers.set(name, { stop, ready });
    return ready;
  }

  private async watchServices(ready: () => void): Promise<void> {
    let index = "0";
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      try {
        const r = await this.consul.catalogServices({ index, wait: WATCH_WAIT, signal: this.stopped.signal });
        index = Number(r.index) < Number(index) ? "0" : r.index;
        this.contact();
        failures = 0;
        const mesh = Object.entries(r.value).filter(([, tags]) => tags.includes(MCP_TAG));
        const names = new Set(mesh.map(([n]) => n));
        for (const [name, tags] of mesh) {
          const a = this.agentsByName.get(name);
          if (a) a.tags = tags;
          void this.ensureWatched(name);
        }
        for (const [name, w] of this.watchers) {
          if (!names.has(name)) {
            w.stop.abort();
            this.watchers.delete(name);
            this.removeAgent(name);
          }
        }
        await Promise.all(mesh.map(([n]) => this.watchers.get(n)?.ready));
        ready();
      } catch (e) {
        if (this.stopped.signal.aborted) return;
        failures = this.failed(e, failures);
        ready(); // start() must not hang while Consul is down: the view is simply empty
        await backoff(failures, this.stopped.signal);
      }
    }
  }

  private async watchService(name: string, signal: AbortSignal, ready: () => void): Promise<void> {
    let index = "0";
    let failures = 0;
    while (!signal.aborted && !this.stopped.signal.aborted) {
      try {
        const r = await this.consul.healthService(name, {
          passing: true,
          index,
          wait: WATCH_WAIT,
          signal: AbortSignal.any([signal, this.stopped.signal]),
        });
        index = Number(r.index) < Number(index) ? "0" : r.index;
        this.contact();
        failures = 0;
        await this.applyInstances(name, r.value);
        ready();
      } catch (e) {
        if (signal.aborted || this.stopped.signal.aborted) return;
        failures = this.failed(e, failures);
        ready();
        await backoff(failures, AbortSignal.any([signal, this.stopped.signal]));
      }
    }
  }

  /** Compares contents (a blocking query's return does not mean a change). */
  private async applyInstances(name: string, entries: ServiceEntry[]): Promise<void> {
    const instances = entries.map((e) => ({ ...e, url: instanceUrl(e) })).sort((a, b) => a.id.localeCompare(b.id));
    let agent = this.agentsByName.get(name);
    const isNew = !agent;
    if (!agent) {
      agent = {
        name,
        tags: entries[0]?.tags ?? [],
        instances: [],
        tools: [],
        toolsHash: undefined,
        description: undefined,
        toolsError: undefined,
      };
      this.agentsByName.set(name, agent);
    }
    const before = signature(agent.instances);
    const gone = agent.instances.filter((i) => !instances.some((n) => n.id === i.id && n.url === i.url));
    agent.instances = instances;
    agent.description = instances[0]?.meta["description"] ?? agent.description;
    if (instances[0]) agent.tags = instances[0].tags;
    for (const g of gone) void this.pool.drop(g.id);
    const changed = before !== signature(instances);
    if (changed) {
      this.logger.info({ agent: name, instances: instances.map((i) => i.id) }, "instances changed");
      this.emit("change", { type: isNew ? "agents" : "instances", agent: name });
    }
    // toolmesh agents publish a tools hash: refetch when it moves. Other MCP servers do not:
    // refetch when their instances change. Either way, retry after a failed fetch.
    const hash = majorityHash(instances);
    const stale = hash === undefined ? changed || agent.tools.length === 0 : hash !== agent.toolsHash;
    if (instances.length > 0 && (stale || agent.toolsError !== undefined)) await this.loadTools(agent, false);
  }

  private async loadTools(agent: CatalogAgent, force: boolean): Promise<void> {
    const hash = majorityHash(agent.instances);
    const source = agent.instances.find((i) => i.meta["tools_hash"] === hash) ?? agent.instances[0];
    if (!source) return;
    try {
      const { tools } = await this.pool.use(source, (c) => c.listTools());
      const changed = force || JSON.stringify(tools) !== JSON.stringify(agent.tools);
      agent.tools = tools;
      agent.toolsHash = hash;
      agent.toolsError = undefined;
      if (changed) {
        this.logger.info({ agent: agent.name, tools: tools.length, toolsHash: hash }, "tools loaded");
        this.emit("change", { type: "tools", agent: agent.name });
      }
    } catch (e) {
      agent.toolsError =
        e instanceof StreamableHTTPError && e.code === 401
          ? `${source.id} requires a bearer token this caller does not have; set ${agentTokenVariable(agent.name)} or MESH_TOKEN`
          : describeError(e);
      this.logger.warn({ agent: agent.name, instance: source.id, err: agent.toolsError }, "cannot list tools; keeping the last list");
    }
  }

  private removeAgent(name: string): void {
    const a = this.agentsByName.get(name);
    if (!a) return;
    for (const i of a.instances) void this.pool.drop(i.id);
    this.agentsByName.delete(name);
    this.logger.info({ agent: name }, "agent left the mesh");
    this.emit("change", { type: "agents", agent: name });
  }

  private contact(): void {
    this.lastContact = Date.now();
    if (this.consulError) {
      this.logger.info({ consul: this.consul.address.url }, "Consul is reachable again; catalog is live");
      this.consulError = undefined;
    }
  }

  private failed(e: unknown, failures: number): number {
    const message = describeError(e);
    if (!this.consulError) {
      this.logger.warn(
        { err: message, agents: this.agentsByName.size },
        "Consul watch failed; serving from the last-known catalog and retrying",
      );
    }
    this.consulError = message;
    return failures + 1;
  }
}

function signature(instances: readonly CatalogInstance[]): string {
  return instances.map((i) => `${i.id}@${i.url}#${i.meta["tools_hash"] ?? ""}`).join(",");
}

/** The tools hash most instances publish (during a rolling upgrade they may differ). */
function majorityHash(instances: readonly CatalogInstance[]): string | undefined {
  const counts = new Map<string, number>();
  for (const i of instances) {
    const h = i.meta["tools_hash"];
    if (h) counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

function backoff(failures: number, signal: AbortSignal): Promise<void> {
  const [min, max] = WATCH_BACKOFF_MS;
  const ms = Math.min(max, min * 2 ** Math.min(failures - 1, 10)) * (0.5 + Math.random() / 2);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
