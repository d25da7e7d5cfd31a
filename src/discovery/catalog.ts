import { EventEmitter } from "node:events";
import type { Tool } from "@modelcontextprotocol/client";
import { discoveryChanges, discoveryWatchErrors } from "../telemetry/metrics.ts";
import type { Blocking, ConsulClient, ServiceEntry } from "../consul/client.ts";
import { instanceUrl } from "./instanceUrl.ts";
import { describeError } from "../protocol/errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { ForeignChecks } from "./foreignCheck.ts";
import { majorityHash, toolSources, toolsWithin } from "./toolLists.ts";
import { watchBlocking } from "./watch.ts";

/** Tag that marks a Consul service as an MCP mesh member. */
export const MCP_TAG = "mcp";
/** Longest wait of one blocking query. @default "30s" */
export const WATCH_WAIT = "30s";
/** Backoff after a failed watch: doubles from the first to the last. @default [100, 5000] */
export const WATCH_BACKOFF_MS: readonly [number, number] = [100, 5_000];

/** Longest wait for one instance's tool list (which also proves it speaks MCP). @default 5000 */
export const DEFAULT_TOOLS_TIMEOUT_MS = 5_000;

export interface CatalogInstance extends ServiceEntry {
  /** The instance's MCP endpoint. */
  url: string;
}

/** A passing instance (per Consul) that this caller cannot use, and why. */
export interface UnusableInstance {
  id: string;
  url: string;
  reason: string;
}

export interface CatalogAgent {
  name: string;
  tags: string[];
  /** Passing instances this caller can use (toolmesh agents, and other servers that answered MCP). */
  instances: CatalogInstance[];
  /**
   * Passing instances kept out of rotation: servers registered with `mesh register` that
   * did not answer an MCP tools/list (not MCP, stalled, refusing). Checked again later.
   */
  unusable: UnusableInstance[];
  tools: Tool[];
  /** The tools hash the tool list was fetched for (toolmesh agents publish it in meta). */
  toolsHash: string | undefined;
  description: string | undefined;
  /** Last error fetching the tool list, if the last attempt failed. */
  toolsError: string | undefined;
}

/** Fetches an instance's tool list; the caller owns the connection. Must honour `signal`. */
export type FetchTools = (instance: CatalogInstance, signal: AbortSignal) => Promise<Tool[]>;

export interface CatalogOptions {
  consul: ConsulClient;
  /** How tool lists are fetched (over MCP, by the caller that owns the connections). */
  fetchTools: FetchTools;
  /** @default DEFAULT_TOOLS_TIMEOUT_MS */
  toolsTimeoutMs?: number;
  logger?: Logger;
  /**
   * "all": watch every service tagged mcp (orchestrator, gateway, CLI).
   * "on-demand": watch a service from the first time it is asked for (agents calling agents).
   */
  mode: "all" | "on-demand";
}

export type CatalogEvent = {
  type: "agents" | "instances" | "tools";
  agent?: string;
  /** Instances that left the agent's usable set (their connections can go). */
  left?: string[];
};

/**
 * The live, in-memory view of the mesh: agent → passing instances → tools. Kept current
 * with Consul blocking queries (a change reaches it as soon as Consul answers, typically
 * in milliseconds). While Consul is unreachable it keeps the last-known view, says so
 * once in the log, and retries with backoff. Emits "change" with a CatalogEvent.
 *
 * Toolmesh agents (meta toolmesh_version) are trusted by their registration. Any other
 * server (added with `mesh register`) is checked once per instance: it must answer an MCP
 * tools/list within the tools timeout, or it is kept out of `instances` (listed in
 * `unusable` with the reason) and checked again later (foreignCheck.ts). One bad member
 * never takes a caller down, and every tool list has a deadline.
 */
export class Catalog extends EventEmitter<{ change: [CatalogEvent] }> {
  private readonly consul: ConsulClient;
  private readonly fetchTools: FetchTools;
  private readonly toolsTimeoutMs: number;
  private readonly logger: Logger;
  /** The check of instances that are not toolmesh agents. */
  private readonly foreign: ForeignChecks<CatalogInstance>;
  /** The last Consul entries per agent (to apply again when a re-check is due). */
  private readonly entries = new Map<string, ServiceEntry[]>();
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
    this.fetchTools = options.fetchTools;
    this.toolsTimeoutMs = options.toolsTimeoutMs ?? DEFAULT_TOOLS_TIMEOUT_MS;
    this.logger = (options.logger ?? silentLogger).child({ component: "catalog" });
    this.mode = options.mode;
    this.foreign = new ForeignChecks({
      fetchTools: (i) => this.fetchWithin(i),
      onRecheckDue: (agent) => void this.reapply(agent),
      stopped: this.stopped.signal,
      logger: this.logger,
    });
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
    this.foreign.stop();
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

  /** Watches which services are mesh members (tagged mcp): each one's instances are watched while it is. */
  private watchServices(ready: () => void): Promise<void> {
    const signal = this.stopped.signal;
    return this.watch(
      (index) => this.consul.catalogServices({ index, wait: WATCH_WAIT, signal, retryMs: 0 }),
      (services) => this.applyServices(services),
      ready,
      signal,
    );
  }

  /** Watches the mesh members among the services, and stops watching those that left; resolves once each has its first view. */
  private async applyServices(services: Record<string, string[]>): Promise<void> {
    const mesh = Object.entries(services).filter(([, tags]) => tags.includes(MCP_TAG));
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
  }

  /** Watches one agent's passing instances. */
  private watchService(name: string, stop: AbortSignal, ready: () => void): Promise<void> {
    const signal = AbortSignal.any([stop, this.stopped.signal]);
    return this.watch(
      // retryMs 0: the watch retries with its own backoff, serving its last view meanwhile.
      (index) => this.consul.healthService(name, { passing: true, index, wait: WATCH_WAIT, retryMs: 0, signal }),
      // Consul matches service names without regard to case: "HR" is not "hr", and gets none of its calls.
      (entries) =>
        this.applyInstances(
          name,
          entries.filter((e) => e.service === name),
        ),
      ready,
      signal,
    );
  }

  /**
   * One of the catalog's watches (watch.ts): each answer applied, then `ready`; a failure
   * logged while the last view stays, then `ready` too (start() must not hang while Consul
   * is down: the view is simply empty).
   */
  private watch<T>(
    query: (index: string) => Promise<Blocking<T>>,
    apply: (value: T) => Promise<void>,
    ready: () => void,
    signal: AbortSignal,
  ): Promise<void> {
    return watchBlocking({
      query,
      onAnswer: async (value) => {
        this.contact();
        await apply(value);
        ready();
      },
      onError: (e) => {
        this.failed(e);
        ready();
      },
      signal,
      backoffMs: WATCH_BACKOFF_MS,
    });
  }

  /** Compares contents (a blocking query's return does not mean a change). */
  private async applyInstances(name: string, entries: ServiceEntry[]): Promise<void> {
    this.entries.set(name, entries);
    const all = entries.map((e) => ({ ...e, url: instanceUrl(e) })).sort((a, b) => a.id.localeCompare(b.id));
    const checking = this.foreign.verify(
      name,
      all.filter((i) => !isToolmesh(i.meta)),
    );
    // Toolmesh instances serve meanwhile: a slow check of a foreign member runs in the
    // background (the member joins when it passes). An agent made only of foreign servers
    // waits for its check, bounded by the tools timeout.
    if (all.some((i) => isToolmesh(i.meta))) void checking.then((checked) => (checked ? this.reapply(name) : undefined));
    else await checking;
    const instances = all.filter((i) => isToolmesh(i.meta) || this.foreign.passed(i));
    const unusable = all.flatMap((i) => {
      const reason = isToolmesh(i.meta) ? undefined : this.foreign.failure(i);
      return reason === undefined ? [] : [{ id: i.id, url: i.url, reason }];
    });
    let agent = this.agentsByName.get(name);
    const isNew = !agent;
    if (!agent) {
      agent = {
        name,
        tags: entries[0]?.tags ?? [],
        instances: [],
        unusable: [],
        tools: [],
        toolsHash: undefined,
        description: undefined,
        toolsError: undefined,
      };
      this.agentsByName.set(name, agent);
    }
    const before = listing(agent.instances, agent.unusable);
    const left = agent.instances.filter((i) => !instances.some((n) => n.id === i.id && n.url === i.url)).map((i) => i.id);
    agent.instances = instances;
    agent.unusable = unusable;
    agent.description = instances[0]?.meta["description"] ?? all[0]?.meta["description"] ?? agent.description;
    if (all[0]) agent.tags = all[0].tags;
    const changed = before !== listing(instances, unusable);
    if (changed) {
      this.logger.info(
        { agent: name, instances: instances.map((i) => i.id), ...(unusable.length ? { unusable } : {}) },
        "instances changed",
      );
      this.changed({ type: isNew ? "agents" : "instances", agent: name, ...(left.length ? { left } : {}) });
    }
    // toolmesh agents publish a tools hash: refetch when it moves. Other MCP servers do not:
    // refetch when their instances change. Either way, retry after a failed fetch.
    const hash = majorityHash(instances);
    const stale = hash === undefined ? changed || agent.tools.length === 0 : hash !== agent.toolsHash;
    if (instances.length > 0 && (stale || agent.toolsError !== undefined)) await this.loadTools(agent, false);
  }

  /** Applies an agent's last Consul entries again (a check finished or is due). */
  private async reapply(agent: string): Promise<void> {
    const entries = this.entries.get(agent);
    if (entries && this.watchers.has(agent) && !this.stopped.signal.aborted) await this.applyInstances(agent, entries);
  }

  /** Fetches an instance's tool list within the tools deadline (and the catalog's own stop). */
  private fetchWithin(instance: CatalogInstance): Promise<Tool[]> {
    return toolsWithin(this.toolsTimeoutMs, this.stopped.signal, (signal) => this.fetchTools(instance, signal));
  }

  /**
   * Fetches the agent's tools from an instance that publishes the majority tools hash (a
   * foreign instance's list is known from its check), trying the next instance when one
   * fails; keeps the last list when all fail.
   */
  private async loadTools(agent: CatalogAgent, force: boolean): Promise<void> {
    const hash = majorityHash(agent.instances);
    const sources = toolSources(agent.instances, hash);
    if (sources.length === 0) return;
    const errors: string[] = [];
    for (const source of sources) {
      const checked = force ? undefined : this.foreign.tools(source);
      try {
        const tools = checked ?? (await this.fetchWithin(source));
        const changed = force || JSON.stringify(tools) !== JSON.stringify(agent.tools);
        agent.tools = tools;
        agent.toolsHash = hash;
        agent.toolsError = undefined;
        if (changed) {
          this.logger.info({ agent: agent.name, tools: tools.length, toolsHash: hash, from: source.id }, "tools loaded");
          this.changed({ type: "tools", agent: agent.name });
        }
        return;
      } catch (e) {
        errors.push(`${source.id}: ${describeError(e)}`);
      }
    }
    agent.toolsError = errors.join("; ");
    this.logger.warn({ agent: agent.name, err: agent.toolsError }, "cannot list tools; keeping the last list");
  }

  private removeAgent(name: string): void {
    const a = this.agentsByName.get(name);
    if (!a) return;
    this.agentsByName.delete(name);
    this.entries.delete(name);
    this.foreign.forget(name);
    this.logger.info({ agent: name }, "agent left the mesh");
    this.changed({ type: "agents", agent: name, left: a.instances.map((i) => i.id) });
  }

  private contact(): void {
    this.lastContact = Date.now();
    if (this.consulError) {
      this.logger.info({ consul: this.consul.address.url }, "Consul is reachable again; catalog is live");
      this.consulError = undefined;
    }
  }

  private changed(event: { type: "agents" | "instances" | "tools"; agent: string; left?: string[] }): void {
    discoveryChanges.inc({ kind: event.type });
    this.emit("change", event);
  }

  /** A watch failed: said once in the log while Consul stays unreachable, and counted. */
  private failed(e: unknown): void {
    const message = describeError(e);
    discoveryWatchErrors.inc();
    if (!this.consulError) {
      this.logger.warn(
        { err: message, agents: this.agentsByName.size },
        "Consul watch failed; serving from the last-known catalog and retrying",
      );
    }
    this.consulError = message;
  }
}

/** Whether an instance is a toolmesh agent (trusted by its registration; publishes its tools hash). */
export function isToolmesh(meta: Readonly<Record<string, string>> | undefined): boolean {
  return meta?.["toolmesh_version"] !== undefined;
}

/** What callers see of an agent's instances, to tell when it changed. */
function listing(instances: readonly CatalogInstance[], unusable: readonly UnusableInstance[]): string {
  return `${signature(instances)}|${unusable.map((u) => `${u.id}:${u.reason}`).join(",")}`;
}

function signature(instances: readonly CatalogInstance[]): string {
  return instances.map((i) => `${i.id}@${i.url}#${i.meta["tools_hash"] ?? ""}`).join(",");
}
